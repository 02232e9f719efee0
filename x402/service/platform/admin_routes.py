"""Admin API: tenants and API keys (``admin`` scope within a tenant; the operator token for everything)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from x402.errors import BadRequest, Forbidden, NotFound
from x402.service.appkeys import PLATFORM
from x402.service.http import json_object as _body
from x402.service.http import json_response as _json
from x402.service.middleware import REQUEST_ID
from x402.service.platform import lifecycle
from x402.service.platform.auth import Principal, require_principal
from x402.service.platform.idempotency import REPLAY_BODY
from x402.service.platform.tenants import Actor, parse_uuid
from x402.wire.models import encode_json

routes = web.RouteTableDef()


def _admin(request: web.Request) -> Principal:
    principal = require_principal(request)
    principal.require("admin")
    return principal


def _actor(request: web.Request, principal: Principal) -> Actor:
    return Actor(principal.actor, request.get(REQUEST_ID))


def _own_tenant(principal: Principal, tenant_id: uuid.UUID) -> None:
    """Another tenant's objects do not exist for this caller (404, not 403: no existence oracle)."""
    if not principal.operator and principal.tenant_id != tenant_id:
        raise NotFound("no such tenant")


def _tenant_filter(principal: Principal) -> uuid.UUID | None:
    return None if principal.operator else principal.tenant_id


def _str(doc: dict[str, Any], name: str, default: str) -> str:
    value = doc.get(name, default)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", code="invalid_field")
    return value


def _grace(doc: dict[str, Any]) -> float:
    value = doc.get("gracePeriodSeconds", 0)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integer includes 600.0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 30 * 86400:
        raise BadRequest("gracePeriodSeconds must be an integer between 0 and 2592000", code="invalid_field")
    return float(value)


@routes.post("/v1/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    """Create a tenant (operator only)."""
    principal = _admin(request)
    if not principal.operator:
        raise Forbidden("only the operator creates tenants", code="operator_only")
    doc = await _body(request)
    store = request.app[PLATFORM].store
    tenant = await store.create_tenant(_str(doc, "name", ""), _str(doc, "tier", "free"), _actor(request, principal))
    return _json(tenant, 201)


@routes.get("/v1/tenants")
async def list_tenants(request: web.Request) -> web.Response:
    """Every tenant for the operator; a tenant's own record otherwise."""
    principal = _admin(request)
    tenants = await request.app[PLATFORM].store.list_tenants(_tenant_filter(principal))
    return _json({"data": tenants})


@routes.get("/v1/tenants/{id}")
async def get_tenant(request: web.Request) -> web.Response:
    """One tenant."""
    principal = _admin(request)
    tenant_id = parse_uuid(request.match_info["id"])
    _own_tenant(principal, tenant_id)
    return _json(await request.app[PLATFORM].store.get_tenant(tenant_id))


@routes.patch("/v1/tenants/{id}")
async def update_tenant(request: web.Request) -> web.Response:
    """Change a tenant's tier (operator only)."""
    principal = _admin(request)
    tenant_id = parse_uuid(request.match_info["id"])
    _own_tenant(principal, tenant_id)
    if not principal.operator:
        raise Forbidden("only the operator changes tiers", code="operator_only")
    doc = await _body(request)
    store = request.app[PLATFORM].store
    return _json(await store.set_tier(tenant_id, _str(doc, "tier", ""), _actor(request, principal)))


@routes.post("/v1/tenants/{id}/keys")
async def create_key(request: web.Request) -> web.Response:
    """Create an API key; the ``key`` field is shown once (a replay of this request omits it)."""
    principal = _admin(request)
    tenant_id = parse_uuid(request.match_info["id"])
    _own_tenant(principal, tenant_id)
    doc = await _body(request)
    scopes = doc.get("scopes", ["verify", "settle"])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise BadRequest("scopes must be a list of strings", code="invalid_field")
    if "admin" in scopes and not principal.operator and "admin" not in principal.scopes:
        raise Forbidden("cannot grant a scope you do not hold", code="insufficient_scope")
    meta, plaintext = await request.app[PLATFORM].store.create_key(
        tenant_id, _actor(request, principal), scopes=scopes, mode=_str(doc, "mode", "live"), name=_str(doc, "name", "")
    )
    request[REPLAY_BODY] = encode_json({**meta, "keyShownOnce": True})
    return _json({**meta, "key": plaintext}, 201)


@routes.get("/v1/tenants/{id}/keys")
async def list_keys(request: web.Request) -> web.Response:
    """The tenant's keys (metadata only)."""
    principal = _admin(request)
    tenant_id = parse_uuid(request.match_info["id"])
    _own_tenant(principal, tenant_id)
    return _json({"data": await request.app[PLATFORM].store.list_keys(tenant_id)})


@routes.post("/v1/keys/{id}/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    """Replace a key: a new secret with the same scopes; the old key stops after ``gracePeriodSeconds`` (0)."""
    principal = _admin(request)
    key_id = parse_uuid(request.match_info["id"])
    grace = _grace(await _body(request))
    platform = request.app[PLATFORM]
    meta, plaintext, old = await platform.store.rotate_key(
        key_id, _actor(request, principal), tenant=_tenant_filter(principal), grace=grace
    )
    platform.auth.forget(old["prefix"])
    request[REPLAY_BODY] = encode_json({**meta, "keyShownOnce": True, "replaced": old})
    return _json({**meta, "key": plaintext, "replaced": old}, 201)


@routes.delete("/v1/keys/{id}")
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key now."""
    principal = _admin(request)
    key_id = parse_uuid(request.match_info["id"])
    platform = request.app[PLATFORM]
    meta = await platform.store.revoke_key(key_id, _actor(request, principal), tenant=_tenant_filter(principal))
    platform.auth.forget(meta["prefix"])
    return _json(meta)


def _operator(request: web.Request, what: str) -> tuple[Principal, uuid.UUID]:
    principal = _admin(request)
    tenant_id = parse_uuid(request.match_info["id"])
    _own_tenant(principal, tenant_id)
    if not principal.operator:
        raise Forbidden(f"only the operator {what} tenants", code="operator_only")
    return principal, tenant_id


@routes.post("/v1/tenants/{id}/suspend")
async def suspend_tenant(request: web.Request) -> web.Response:
    """Suspend a tenant (operator only): its keys get 403 ``tenant_suspended`` and its background work stops."""
    principal, tenant_id = _operator(request, "suspends")
    platform = request.app[PLATFORM]
    out = await lifecycle.set_status(platform.store.pool, tenant_id, "suspended", _actor(request, principal))
    platform.auth.forget()
    return _json(out)


@routes.post("/v1/tenants/{id}/reactivate")
async def reactivate_tenant(request: web.Request) -> web.Response:
    """Reactivate a suspended tenant (operator only)."""
    principal, tenant_id = _operator(request, "reactivates")
    platform = request.app[PLATFORM]
    out = await lifecycle.set_status(platform.store.pool, tenant_id, "active", _actor(request, principal))
    platform.auth.forget()
    return _json(out)


@routes.get("/v1/tenants/{id}/export")
async def export_tenant(request: web.Request) -> web.StreamResponse:
    """Every row of the tenant as JSON lines ``{"table", "row"}`` (secrets redacted), streamed; audited."""
    principal = _admin(request)
    tenant_id = parse_uuid(request.match_info["id"])
    _own_tenant(principal, tenant_id)
    pool = request.app[PLATFORM].store.pool
    await lifecycle.audit_export(pool, tenant_id, _actor(request, principal))
    lines = lifecycle.export_lines(pool, tenant_id)
    first = await anext(lines)  # a missing tenant is a 404 before any byte is sent
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    await resp.write(first.encode() + b"\n")
    async for line in lines:
        await resp.write(line.encode() + b"\n")
    await resp.write_eof()
    return resp


@routes.delete("/v1/tenants/{id}")
async def delete_tenant(request: web.Request) -> web.Response:
    """Delete a tenant's data and crypto-shred its wallet keys (operator only; ``?confirm=<tenant id>``)."""
    principal, tenant_id = _operator(request, "deletes")
    platform = request.app[PLATFORM]
    out = await lifecycle.delete_tenant(
        platform.store.pool, tenant_id, _actor(request, principal), confirm=request.query.get("confirm", "")
    )
    platform.auth.forget()
    return _json(out)
