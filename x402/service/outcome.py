"""What a facilitator call adds to its payment record beyond the wire outcome: the paid resource, and latency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from x402.wire.models import resource_url

#: Longest resource URL / method kept on a payment record (longer ones are cut, never refused).
MAX_RESOURCE = 2048
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class OutcomeDetail:
    """The resource a payment names (URL and HTTP method, '' when unknown) and how long the call took."""

    resource: str = ""
    method: str = ""
    latency_ms: float | None = None


#: Set by the facilitator routes before they report an outcome; read by the platform's payment recorder.
OUTCOME_DETAIL: web.RequestKey[OutcomeDetail] = web.RequestKey("x402_outcome_detail")


def _method(payload: Any, requirements: Any) -> str:
    exts = getattr(payload, "extensions", None)
    bazaar = exts.get("bazaar") if isinstance(exts, dict) else None
    info = bazaar.get("info") if isinstance(bazaar, dict) else None
    inp = info.get("input") if isinstance(info, dict) else None
    if not isinstance(inp, dict):  # v1: the input schema of the requirements' outputSchema
        schema = getattr(requirements, "output_schema", None)
        inp = schema.get("input") if isinstance(schema, dict) else None
    if not isinstance(inp, dict):
        return ""
    if inp.get("type") == "mcp":
        return "POST"
    method = str(inp.get("method", "GET")).upper()
    return method if method in _METHODS else ""


def detail_of(payload: Any, requirements: Any, latency_ms: float) -> OutcomeDetail:
    """The detail of a /verify or /settle call (the resource from the payment itself)."""
    try:
        url = resource_url(payload, requirements)
    except (AttributeError, TypeError):
        url = ""
    return OutcomeDetail(url[:MAX_RESOURCE], _method(payload, requirements), round(latency_ms, 3))
