"""The risk stage's HTTP surface: tenant rule documents and address lists (audited), and the engine's life cycle.

The engine is built here (before the facilitator's context) so the facilitator, the paywall and the wallet payer
all share one engine per process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog
from aiohttp import web

from risk.build import RiskOptions, build_engine
from risk.store import LIST_NAMES, AuditRecord, Conn
from x402.errors import NotFound, Unauthorized
from x402.service.appkeys import CACHE, DB, RISK, SETTINGS
from x402.service.http import json_response as _json
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry
from x402.service.platform.auth import principal_of
from x402.service.settings import Settings
from x402.wire.models import decode_json

routes = web.RouteTableDef()


class _Addresses(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    addresses: list[str]
    label: str = ""


def _caller(request: web.Request) -> tuple[str | None, str]:
    """(tenant id or None for the global rules, actor); tenant keys need the ``admin`` scope."""
    principal = principal_of(request)
    if principal is None:
        if request.app[SETTINGS].require_api_keys:
            raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")
        return None, "anonymous"
    principal.require("admin")
    return (None if principal.tenant_id is None else str(principal.tenant_id)), principal.actor


def _engine(request: web.Request) -> Any:
    engine = request.app.get(RISK)
    if engine is None or engine.store is None:
        raise NotFound("the risk stage is disabled (X402_RISK_ENABLED=false)", code="risk_disabled")
    return engine


@routes.get("/v1/risk/rules")
async def get_rules(request: web.Request) -> web.Response:
    """The caller's rule document (the global one for the operator or when keys are off)."""
    tenant, _ = _caller(request)
    doc = await _engine(request).store.get_config(tenant)
    return _json({"tenantId": tenant, "rules": doc or {}})


@routes.put("/v1/risk/rules")
async def put_rules(request: web.Request) -> web.Response:
    """Replace the rule document: validated (expressions parsed, never evaluated as code), audited."""
    tenant, actor = _caller(request)
    engine = _engine(request)
    doc = decode_json(await request.read(), dict[str, Any])
    version = await engine.store.put_config(tenant, doc, actor=actor)
    engine.invalidate(tenant)
    return _json({"tenantId": tenant, "version": version, "rules": doc})


@routes.get("/v1/risk/lists")
async def get_lists(request: web.Request) -> web.Response:
    """Address lists in force for the caller (global entries plus its own)."""
    tenant, _ = _caller(request)
    lists = await _engine(request).store.lists_for(tenant)
    return _json({name: sorted(lists.get(name)) for name in LIST_NAMES})


def _list_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in LIST_NAMES:
        raise NotFound(f"no list {name!r} (lists: {', '.join(LIST_NAMES)})", code="risk_list_not_found")
    return name


@routes.post("/v1/risk/lists/{name}")
async def add_to_list(request: web.Request) -> web.Response:
    """Add addresses to one of the caller's lists (allow, deny, exchange, mixer, exploit)."""
    tenant, actor = _caller(request)
    name = _list_name(request)
    body = decode_json(await request.read(), _Addresses)
    engine = _engine(request)
    added = await engine.store.add_addresses(tenant, name, body.addresses, actor=actor, label=body.label)
    engine.invalidate(tenant)
    return _json({"list": name, "added": added})


@routes.delete("/v1/risk/lists/{name}")
async def remove_from_list(request: web.Request) -> web.Response:
    """Remove addresses from one of the caller's lists."""
    tenant, actor = _caller(request)
    name = _list_name(request)
    body = decode_json(await request.read(), _Addresses)
    engine = _engine(request)
    removed = await engine.store.remove_addresses(tenant, name, body.addresses, actor=actor)
    engine.invalidate(tenant)
    return _json({"list": name, "removed": removed})


@routes.get("/v1/risk/audit")
async def get_audit(request: web.Request) -> web.Response:
    """The newest changes to the caller's rules and lists."""
    tenant, _ = _caller(request)
    trail = await _engine(request).store.audit_trail(tenant)
    return _json([msgspec.to_builtins(r) for r in trail])


async def _platform_audit(conn: Conn, record: AuditRecord) -> None:
    """Risk rule and list changes also land in the platform's hash-chained audit log (same transaction)."""
    rid = structlog.contextvars.get_contextvars().get("request_id")
    await audit.append(
        conn,
        AuditEntry(
            record.actor,
            record.action,
            "risk",
            record.subject if record.tenant_id is None else f"{record.tenant_id}:{record.subject}",
            {"value": record.before} if record.before is not None else None,
            {"value": record.after} if record.after is not None else None,
            rid if isinstance(rid, str) else None,
        ),
    )


def risk_options(settings: Settings) -> RiskOptions:
    """The risk package's options, from the settings read once at start-up."""
    return RiskOptions(
        data_dir=settings.data_dir,
        rule_timeout=settings.risk_rule_timeout,
        config_ttl=settings.risk_config_ttl,
        chainalysis_api_key=settings.risk_chainalysis_key,
    )


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.risk_enabled:
        yield
        return
    engine = await build_engine(risk_options(settings), app[DB], app[CACHE], audit_hook=_platform_audit)
    app[RISK] = engine
    yield
    await engine.close()


def install(app: web.Application) -> None:
    """Build the risk engine per process and mount the risk API (before the facilitator's context)."""
    app.cleanup_ctx.append(_ctx)
    app.add_routes(routes)
