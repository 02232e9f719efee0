"""``/v1/events`` (usage ingestion), tenant-scoped: a tenant key with the ``verify`` or ``admin`` scope."""

from __future__ import annotations

import uuid
from datetime import timedelta

from aiohttp import web

from x402.errors import Forbidden, Unauthorized, ValidationFailed
from x402.service.appkeys import DB, SETTINGS
from x402.service.http import json_object, json_response
from x402.service.metering.ingest import MAX_BATCH, parse_batch, store
from x402.service.platform.auth import principal_of

routes = web.RouteTableDef()

#: Scopes that may report usage and read entitlements: the provider's server holds a ``verify`` key already.
USAGE_SCOPES = frozenset({"verify", "admin"})


def caller_tenant(request: web.Request) -> uuid.UUID | None:
    """The caller's tenant (None without API keys); 401 / 403 for a missing key, an agent key or a missing scope."""
    principal = principal_of(request)
    if principal is None:
        if request.app[SETTINGS].require_api_keys:
            raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")
        return None
    if principal.agent:
        raise Forbidden("an agent key may only pay from and read its wallet", code="agent_key_not_allowed")
    if not principal.operator and not USAGE_SCOPES & principal.scopes:
        raise Forbidden("usage needs the 'verify' or 'admin' scope", code="insufficient_scope")
    return principal.tenant_id


@routes.post("/v1/events")
async def ingest(request: web.Request) -> web.Response:
    """A batch of usage events: each lands once per tenant; bad ones get their own error."""
    tenant_id = caller_tenant(request)
    doc = await json_object(request)
    unknown = sorted(set(doc) - {"events"})
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code="invalid_batch")
    docs = doc.get("events")
    if not isinstance(docs, list) or len(docs) > MAX_BATCH:
        raise ValidationFailed(f"events must be a list of at most {MAX_BATCH} events", code="invalid_batch")
    events, result = parse_batch(docs, timedelta(seconds=request.app[SETTINGS].usage_late_window))
    async with request.app[DB].acquire() as conn:
        await store(conn, tenant_id, events, result)
    return json_response(result.json())
