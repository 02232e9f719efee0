"""Small helpers every route module uses: JSON answers and JSON-object request bodies."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from x402.errors import BadRequest
from x402.wire import jsonlimits
from x402.wire.models import encode_json

#: Set by a handler whose answer is not final (e.g. ``settlement_pending``): an Idempotency-Key replay must not
#: return it, so the key is freed and a retry with the same key runs again.
ANSWER_NOT_FINAL: web.RequestKey[bool] = web.RequestKey("x402_answer_not_final")


def json_response(body: Any, status: int = 200) -> web.Response:
    """An ``application/json`` answer (msgspec-encoded: wire structs and plain values alike)."""
    return web.Response(status=status, body=encode_json(body), content_type="application/json")


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``); 400 ``invalid_json`` / ``json_too_*`` otherwise."""
    raw = await request.read()
    if not raw:
        return {}
    doc = jsonlimits.loads(raw)
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return doc
