"""structlog set-up: JSON lines with request id and payment id bound per request."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog

_SECRET_KEYS = frozenset(
    {
        "key",
        "private_key",
        "secret",
        "password",
        "api_key",
        "authorization",
        "master_key",
        "token",
        "admin_token",
        "signature",
        "webhook_secret",
        "x_payment",
        "payment_signature",
    }
)
#: Secret-shaped text wherever it appears (messages, exception text, nested values): API keys keep their public
#: prefix, bearer credentials and webhook secrets go, hex blobs of a signature's length (65 bytes) or more go.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(x402_(?:live|test)_[a-z2-7]{8,12}_)[A-Za-z0-9_-]+"), r"\1[redacted]"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9_-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s'\"]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(x-api-key:\s*)[^\s'\"]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(?:0x)?[0-9a-f]{130,}"), "[redacted hex]"),
)


#: One cheap search first: most log values hold nothing secret-shaped and skip the substitutions.
_TRIGGER = re.compile(r"x402_|whsec_|(?i:bearer|x-api-key)|[0-9a-fA-F]{130}")


def scrub(text: str) -> str:
    """``text`` with every secret-shaped part replaced (API keys, bearer tokens, webhook secrets, signatures)."""
    if not _TRIGGER.search(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: "[redacted]" if str(k).lower() in _SECRET_KEYS else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event):
        event[k] = "[redacted]" if k.lower() in _SECRET_KEYS else _clean(event[k])
    return event


class ScrubFilter(logging.Filter):
    """Scrubs stdlib log records (aiohttp's parser errors quote raw header lines, Authorization included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message and exception text in place; never drops a record."""
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


#: Log keys that always hold one type, whichever layer logged them: payment ids are strings (a uuid, or the
#: paywall's ``network:asset:from:nonce``); settlement journal rows log their integer id as ``settlement_id``.
_STRING_KEYS = ("payment_id", "wallet_id", "tenant_id", "trace_id")


def _one_type(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in _STRING_KEYS:
        v = event.get(k)
        if v is not None and not isinstance(v, str):
            event[k] = str(v)
    return event


def _stdlib_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Name the stdlib logger a foreign line came from; warnings captured by ``logging.captureWarnings`` say so."""
    record = event.get("_record")
    if isinstance(record, logging.LogRecord):
        event.setdefault("logger", record.name)
        if record.name == "py.warnings":
            event["event"] = "python_warning"
            event["detail"] = record.getMessage().strip()
    return event


_state: dict[str, str] = {"format": "json"}


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure structlog and stdlib logging once per process: one format (JSON lines or console) for every line.

    structlog events render directly (the hot path); stdlib records (aiohttp, asyncpg, third parties) and Python
    warnings (``logging.captureWarnings``) go through the same processors via ``structlog.stdlib.ProcessorFormatter``.
    """
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    _state["format"] = fmt
    # plain tracebacks: the same output whether or not `rich` happens to be installed (its renderer stats files)
    console = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else console
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _one_type, _redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _stdlib_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _one_type,
            _redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(lvl, logging.WARNING))
    logging.captureWarnings(True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def say(message: str, event: str = "startup", **fields: Any) -> None:
    """A start-up line for the person running the service, on stdout, whatever the log level.

    In JSON mode it is a JSON line like every other (``event`` ``startup``, the text in ``message``); in console
    mode it is the plain text.
    """
    if _state["format"] == "json":
        line = {"event": event, "message": scrub(message), **_clean(fields), "level": "info"}
        line["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        print(json.dumps(line, default=str), flush=True)
    else:
        print(message, flush=True)


def get_logger(name: str) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name)
