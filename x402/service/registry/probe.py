"""Probe a paid resource without paying: it must answer a parseable, invocable 402 (architecture.md §7.3).

A probe passes when the answer is a 402 carrying a v2 ``PAYMENT-REQUIRED`` header (or a v1/v2 JSON body) with a
non-empty ``accepts``, every amount in atomic units, and a bazaar input schema (v2 ``extensions.bazaar.info.input``,
v1 ``accepts[0].outputSchema.input``). Otherwise ``reason`` is one of REASONS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from x402.errors import BadRequest, InvalidPaymentHeader
from x402.service.registry.models import MAX_ACCEPTS, is_atomic
from x402.service.registry.outbound import Fetched, Outbound, OutboundFailed
from x402.wire import jsonlimits
from x402.wire.codec import PAYMENT_REQUIRED, decode_payment_required

#: Why a probe failed. ``unreachable`` and ``server_error`` mean the resource is down; the rest that it is up
#: but not a valid, invocable x402 resource.
REASONS: Final = (
    "unreachable",
    "server_error",
    "not_402",
    "invalid_402",
    "empty_accepts",
    "decimal_amount",
    "missing_input_schema",
)
DOWN_REASONS: Final = frozenset({"unreachable", "server_error"})
PROBE_MAX_BYTES: Final = 256 * 1024


@dataclass(slots=True)
class ProbeResult:
    """What a probe found; ``accepts``/``resource``/``extensions`` are the 402's when it was parseable."""

    url: str
    method: str
    reason: str | None
    http_status: int | None = None
    x402_version: int | None = None
    accepts: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    transport: str | None = None
    detail: str | None = None
    ms: float = 0.0

    @property
    def ok(self) -> bool:
        """A valid, invocable 402."""
        return self.reason is None

    @property
    def up(self) -> bool:
        """The resource answered (whatever it answered, short of a 5xx)."""
        return self.reason not in DOWN_REASONS

    def evidence(self) -> dict[str, Any]:
        """What to store as proof of this probe."""
        ev: dict[str, Any] = {
            "probedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "method": self.method,
            "url": self.url,
            "httpStatus": self.http_status,
            "ms": round(self.ms, 1),
        }
        if self.transport:
            ev["transport"] = self.transport
            ev["x402Version"] = self.x402_version
            ev["acceptsCount"] = len(self.accepts)
        if self.reason:
            ev["reason"] = self.reason
        if self.detail:
            ev["detail"] = self.detail
        return ev


def _fail(result: ProbeResult, reason: str, detail: str) -> ProbeResult:
    result.reason = reason
    result.detail = detail
    return result


def parse_402(fetched: Fetched, result: ProbeResult) -> ProbeResult:
    """Judge a fetched answer; fills ``result`` and returns it."""
    result.http_status = fetched.status
    if fetched.status >= 500:
        return _fail(result, "server_error", f"HTTP {fetched.status}")
    if fetched.status != 402:
        return _fail(result, "not_402", f"expected HTTP 402, got {fetched.status}")
    header = fetched.headers.get(PAYMENT_REQUIRED)
    doc: dict[str, Any] | None = None
    if header:
        try:
            doc = msgspec.to_builtins(decode_payment_required(header))
        except InvalidPaymentHeader:
            # decoding to the strict struct failed; decode loosely so a decimal amount still gets its own reason
            doc = _loose_header(header)
            if doc is None:
                return _fail(result, "invalid_402", "PAYMENT-REQUIRED header is not a base64 x402 v2 object")
        result.transport = "header"
    else:
        try:
            body = jsonlimits.loads(fetched.body) if fetched.body else None
        except BadRequest:
            body = None
        if isinstance(body, dict) and body.get("x402Version") in (1, 2):
            doc = body
            result.transport = "body"
    if doc is None:
        return _fail(result, "invalid_402", "402 without a PAYMENT-REQUIRED header or an x402 JSON body")
    return _judge(doc, result)


def _loose_header(value: str) -> dict[str, Any] | None:
    import base64
    import binascii

    try:
        doc = jsonlimits.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, BadRequest):
        return None
    return doc if isinstance(doc, dict) and doc.get("x402Version") == 2 else None


def _judge(doc: dict[str, Any], result: ProbeResult) -> ProbeResult:
    version = doc.get("x402Version")
    result.x402_version = version if version in (1, 2) else None
    accepts = doc.get("accepts")
    if not isinstance(accepts, list) or not accepts:
        return _fail(result, "empty_accepts", "accepts is missing or empty")
    if len(accepts) > MAX_ACCEPTS or not all(isinstance(a, dict) for a in accepts):
        return _fail(result, "invalid_402", "accepts entries must be objects")
    result.accepts = accepts
    amount_key = "amount" if version == 2 else "maxAmountRequired"
    for i, a in enumerate(accepts):
        if not is_atomic(a.get(amount_key)):
            return _fail(result, "decimal_amount", f"accepts[{i}].{amount_key} = {a.get(amount_key)!r} is not atomic")
    resource = doc.get("resource")
    if isinstance(resource, dict):
        result.resource = resource
    elif version == 1:
        first = accepts[0]
        result.resource = {k: first[k] for k in ("description", "mimeType") if isinstance(first.get(k), str)}
    ext = doc.get("extensions")
    if isinstance(ext, dict):
        result.extensions = ext
    if not _has_input_schema(doc, version):
        return _fail(result, "missing_input_schema", "no bazaar info.input (the resource is not invocable)")
    return result


def _has_input_schema(doc: dict[str, Any], version: Any) -> bool:
    if version == 1:
        schema = doc["accepts"][0].get("outputSchema")
        return isinstance(schema, dict) and isinstance(schema.get("input"), dict)
    bazaar = (doc.get("extensions") or {}).get("bazaar")
    info = bazaar.get("info") if isinstance(bazaar, dict) else None
    return isinstance(info, dict) and isinstance(info.get("input"), dict)


async def probe(outbound: Outbound, url: str, method: str = "GET") -> ProbeResult:
    """Request ``url`` without payment and judge the answer; never raises for remote failures."""
    result = ProbeResult(url=url, method=method, reason=None)
    started = time.perf_counter()
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    try:
        fetched = await outbound.request(
            method, url, json_body=body, headers={"Accept": "application/json"}, max_bytes=PROBE_MAX_BYTES
        )
    except OutboundFailed as exc:
        result.ms = (time.perf_counter() - started) * 1000
        reason = "unreachable" if exc.reason == "unreachable" else "invalid_402"
        return _fail(result, reason, exc.detail)
    except BadRequest as exc:  # refused by the outbound policy (private address): unreachable from here
        return _fail(result, "unreachable", exc.detail)
    result.ms = (time.perf_counter() - started) * 1000
    return parse_402(fetched, result)
