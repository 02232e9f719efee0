"""``/v1/events`` (usage ingestion), tenant-scoped: a tenant key with the ``verify`` or ``admin`` scope."""

from __future__ import annotations

import uuid
from datetime import timedelta

from aiohttp import web

from x402.errors import Forbidden, Unauthorized, ValidationFailed
from x402.service.appkeys import DB, METERING, SETTINGS
from x402.service.http import json_object, json_response
from x402.service.metering import plans
from x402.service.metering.ingest import MAX_BATCH, parse_batch, store
from x402.service.platform.auth import principal_of

routes = web.RouteTableDef()

#: Scopes that may report usage and read entitlements: the provider's server holds a ``verify`` key already.
USAGE_SCOPES = frozenset({"verify", "admin"})


def caller_tenant(request: web.Request, *, write: bool = False) -> uuid.UUID | None:
    """The caller's tenant (None without API keys); 401 / 403 for a missing key, an agent key or a missing scope."""
    principal = principal_of(request)
    if principal is None:
        if request.app[SETTINGS].require_api_keys:
            raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")
        return None
    if principal.agent:
        raise Forbidden("an agent key may only pay from and read its wallet", code="agent_key_not_allowed")
    if write:
        principal.require("admin")
    elif not principal.operator and not USAGE_SCOPES & principal.scopes:
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
    async with request.app[DB].acquire() as conn, conn.transaction():
        await store(conn, tenant_id, events, result)
        if result.accepted:
            landed = set(result.accepted)
            pairs = {(e.customer, e.meter) for e in events if e.id in landed}
            await plans.warn(conn, tenant_id, pairs)
            await plans.notify(conn, tenant_id, {c for c, _ in pairs})
    _evict(request, tenant_id, {e.customer for e in events})
    return json_response(result.json())


def _evict(request: web.Request, tenant_id: uuid.UUID | None, customers: set[str]) -> None:
    """Drop this process's cached answers now (the NOTIFY reaches the other processes)."""
    cache, tenant = request.app[METERING], plans.tenant_text(tenant_id)
    for customer in customers:
        cache.evict(f"{tenant}|{customer}")


@routes.put("/v1/meters/{key}")
async def put_meter(request: web.Request) -> web.Response:
    """Create or replace a meter (sum, count, max, or unique count of a property)."""
    tenant_id = caller_tenant(request, write=True)
    key = plans.check_key(request.match_info["key"], "meter")
    doc = await json_object(request)
    async with request.app[DB].acquire() as conn:
        out = await plans.put_meter(conn, tenant_id, key, doc)
    _evict(request, tenant_id, {"*"})
    return json_response(out)


@routes.get("/v1/meters")
async def list_meters(request: web.Request) -> web.Response:
    """The caller's meters."""
    tenant_id = caller_tenant(request)
    async with request.app[DB].acquire() as conn:
        return json_response({"meters": await plans.list_meters(conn, tenant_id)})


@routes.put("/v1/plans/{key}")
async def put_plan(request: web.Request) -> web.Response:
    """Create or replace a plan: features, limits per meter, hard or soft stop, overage prices, burn rates."""
    tenant_id = caller_tenant(request, write=True)
    key = plans.check_key(request.match_info["key"], "plan")
    doc = await json_object(request)
    async with request.app[DB].acquire() as conn:
        out = await plans.put_plan(conn, tenant_id, key, doc)
    _evict(request, tenant_id, {"*"})
    return json_response(out)


@routes.get("/v1/plans")
async def list_plans(request: web.Request) -> web.Response:
    """The caller's plans."""
    tenant_id = caller_tenant(request)
    async with request.app[DB].acquire() as conn:
        return json_response({"plans": await plans.list_plans(conn, tenant_id)})


@routes.put("/v1/customers/{id}")
async def put_customer(request: web.Request) -> web.Response:
    """Put one of the caller's customers on a plan (customer ids are the caller's own, per tenant)."""
    tenant_id = caller_tenant(request, write=True)
    customer = plans.check_customer(request.match_info["id"])
    doc = await json_object(request)
    async with request.app[DB].acquire() as conn:
        out = await plans.put_customer(conn, tenant_id, customer, doc)
    _evict(request, tenant_id, {customer})
    return json_response(out)


@routes.get("/v1/entitlements/{customer}")
async def entitlements(request: web.Request) -> web.Response:
    """Features and per-meter allowance of a customer now (cached; ``X402-Quota-Warning`` at 80/90/100%)."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    cache, tenant = request.app[METERING], plans.tenant_text(tenant_id)
    answer = cache.get(tenant, customer)
    if answer is None:
        async with request.app[DB].acquire() as conn:
            answer = await plans.entitlements(conn, tenant_id, customer)
        cache.put(tenant, customer, answer)
    response = json_response(answer)
    if answer["warning"] is not None:
        response.headers["X402-Quota-Warning"] = str(answer["warning"])
    return response
