"""OpenTelemetry traces, off by default: a span per request and per payment step, exported over OTLP/HTTP.

On when the standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
set, or ``OTEL_TRACES_EXPORTER=otlp``; never with ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``) and
the ``otel`` extra is installed; the exporter reads the rest of ``OTEL_*`` itself. Off, :func:`span` is one global
check and a no-op context manager, so the hot path pays nothing.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

_state: dict[str, Any] = {"tracer": None, "provider": None}


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the standard OTEL_* variables in ``env`` ask for trace export."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(service_name: str) -> bool:
    """Install the tracer provider with a batching OTLP/HTTP exporter; False when the SDK is not installed."""
    try:
        trace: Any = importlib.import_module("opentelemetry.trace")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer("x402")
    return True


def shutdown() -> None:
    """Flush and stop the exporter (at process exit)."""
    provider = _state["provider"]
    _state["tracer"] = _state["provider"] = None
    if provider is not None:
        provider.shutdown()


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A child of the current span (``None`` when tracing is off); None-valued attributes are left out."""
    tracer = _state["tracer"]
    if tracer is None:
        yield None
        return
    attrs = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(name, attributes=attrs) as s:
        yield s


def annotate(target: Any, **attributes: Any) -> None:
    """Set attributes on ``target`` (a span from :func:`span`, or None when off)."""
    if target is None:
        return
    for k, v in attributes.items():
        if v is not None:
            target.set_attribute(k, v)


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _state["tracer"] is not None


def annotate_current(**attributes: Any) -> None:
    """Set attributes on the current span (nothing when tracing is off)."""
    if _state["tracer"] is None:
        return
    trace: Any = importlib.import_module("opentelemetry.trace")

    annotate(trace.get_current_span(), **attributes)


def trace_id() -> str | None:
    """The current trace id (32 hex digits), or None when tracing is off or no span is open."""
    if _state["tracer"] is None:
        return None
    trace: Any = importlib.import_module("opentelemetry.trace")

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
