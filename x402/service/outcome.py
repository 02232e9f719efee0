"""A facilitator outcome as the outcome hook is told it (``Outcome``), and what a call adds to its payment record
beyond the wire outcome: the paid resource, and latency (``OutcomeDetail``)."""

from __future__ import annotations

import uuid
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """One facilitator answer, told to the outcome hook before it goes out.

    ``kind``: verify | settle | verify_tx; ``requirements``: the payment's, or the verify-tx body; ``request``:
    None for the in-process facilitator, which names the record's ``tenant_id`` and ``detail`` (resource, method,
    latency) itself; ``payload``: the payment (its resource URL goes into the events).
    """

    kind: str
    requirements: Any
    result: Any
    request: web.Request | None = None
    payload: Any = None
    tenant_id: uuid.UUID | None = None
    detail: OutcomeDetail | None = None


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
