"""``/v1/events`` (usage ingestion), tenant-scoped: a tenant key with the ``verify`` or ``admin`` scope."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from x402.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from x402.service.appkeys import DB, METERING, SETTINGS
from x402.service.http import json_object, json_response
from x402.service.metering import ledger, plans
from x402.service.metering.ingest import MAX_BATCH, MAX_VALUE, as_int, parse_batch
from x402.service.metering.land import evict, land
from x402.service.middleware import REQUEST_ID
from x402.service.platform.auth import principal_of

routes = web.RouteTableDef()

#: Scopes that may report usage and read entitlements: the provider's server holds a ``verify`` key already.
USAGE_SCOPES = frozenset({"verify", "admin"})
_REFERENCE = re.compile(ledger.REFERENCE_PATTERN)


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
    await land(request.app, tenant_id, events, result)
    return json_response(result.json())


def _evict(request: web.Request, tenant_id: uuid.UUID | None, customers: set[str]) -> None:
    """Drop this process's cached answers now (the NOTIFY reaches the other processes)."""
    evict(request.app, tenant_id, customers)


Put = Callable[[Any, uuid.UUID | None, str, dict[str, Any]], Awaitable[dict[str, Any]]]
Lister = Callable[[Any, uuid.UUID | None], Awaitable[list[dict[str, Any]]]]


async def _define(request: web.Request, what: str, put: Put) -> web.Response:
    """Create or replace a meter or plan of the caller (admin); every cached answer of the tenant is dropped."""
    tenant_id = caller_tenant(request, write=True)
    key = plans.check_key(request.match_info["key"], what)
    doc = await json_object(request)
    async with request.app[DB].acquire() as conn:
        out = await put(conn, tenant_id, key, doc)
    _evict(request, tenant_id, {"*"})
    return json_response(out)


async def _list(request: web.Request, name: str, lister: Lister) -> web.Response:
    tenant_id = caller_tenant(request)
    async with request.app[DB].acquire() as conn:
        return json_response({name: await lister(conn, tenant_id)})


@routes.put("/v1/meters/{key}")
async def put_meter(request: web.Request) -> web.Response:
    """Create or replace a meter (sum, count, max, or unique count of a property)."""
    return await _define(request, "meter", plans.put_meter)


@routes.get("/v1/meters")
async def list_meters(request: web.Request) -> web.Response:
    """The caller's meters."""
    return await _list(request, "meters", plans.list_meters)


@routes.put("/v1/plans/{key}")
async def put_plan(request: web.Request) -> web.Response:
    """Create or replace a plan: features, limits per meter, hard or soft stop, overage prices, burn rates."""
    return await _define(request, "plan", plans.put_plan)


@routes.get("/v1/plans")
async def list_plans(request: web.Request) -> web.Response:
    """The caller's plans."""
    return await _list(request, "plans", plans.list_plans)


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


def _actor(request: web.Request) -> str:
    principal = principal_of(request)
    return "anonymous" if principal is None else principal.actor


def _credits(doc: dict[str, Any], name: str = "credits") -> int:
    value = as_int(doc.get(name), 1)
    if value is None:
        raise ValidationFailed(f"{name} must be an integer from 1 to {MAX_VALUE}", code="invalid_credit_entry")
    return value


def _reference(doc: dict[str, Any]) -> str | None:
    ref = doc.get("reference")
    if ref is not None and not (isinstance(ref, str) and _REFERENCE.fullmatch(ref)):
        raise ValidationFailed(
            "reference must be 1-200 characters of A-Z a-z 0-9 _ . : @ / -", code="invalid_credit_entry"
        )
    return ref


def _expires_at(value: Any) -> datetime:
    """An ISO-8601 instant with its offset, in the future: 422 ``invalid_expires_at`` / ``expires_at_not_future``."""
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            "expiresAt must be an ISO-8601 date-time with an offset (2027-01-31T00:00:00Z)", code="invalid_expires_at"
        ) from None
    if at.tzinfo is None:
        raise ValidationFailed("expiresAt needs an offset (Z or +hh:mm)", code="invalid_expires_at")
    if at <= datetime.now(UTC):
        raise ValidationFailed("expiresAt must be in the future", code="expires_at_not_future")
    return at


@routes.get("/v1/credits/{customer}")
async def credit_balance(request: web.Request) -> web.Response:
    """A customer's credit balance and the credits that expire next."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    async with request.app[DB].acquire() as conn:
        return json_response(await ledger.balance(conn, tenant_id, customer))


@routes.get("/v1/credits/{customer}/history")
async def credit_history(request: web.Request) -> web.Response:
    """A customer's ledger entries, newest first."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    raw, cur = request.query.get("limit", ""), request.query.get("cursor", "")
    if raw and not (raw.isdigit() and 1 <= int(raw) <= 100):
        raise ValidationFailed("limit must be an integer from 1 to 100", code="invalid_query")
    if cur and not (cur.isdigit() and len(cur) <= 18):
        raise ValidationFailed("cursor must be the nextCursor of the previous page", code="invalid_query")
    async with request.app[DB].acquire() as conn:
        page, nxt = await ledger.history(conn, tenant_id, customer, int(raw or 50), int(cur) if cur else None)
    return json_response({"entries": page, "nextCursor": None if nxt is None else str(nxt)})


@routes.post("/v1/credits/{customer}/entries")
async def credit_entry(request: web.Request) -> web.Response:
    """Grant credits, or take them back as an expiry or a refund (admin; audited; idempotent by reference)."""
    tenant_id = caller_tenant(request, write=True)
    customer = plans.check_customer(request.match_info["customer"])
    doc = await json_object(request)
    unknown = sorted(set(doc) - {"kind", "credits", "reference", "expiresAt"})
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code="invalid_credit_entry")
    kind = doc.get("kind")
    if kind not in ("grant", "expiry", "refund"):
        raise ValidationFailed("kind must be grant, expiry or refund", code="invalid_credit_entry")
    ref = _reference(doc)
    if kind == "expiry" and ref is not None and ref.startswith(tuple(f"{k}:" for k in ledger.EXPIRING)):
        raise ValidationFailed(
            "expiry references grant:… and purchase:… belong to the expiry pass", code="reserved_reference"
        )
    expires_at = None
    if doc.get("expiresAt") is not None:
        if kind != "grant":
            raise ValidationFailed("only a grant may carry expiresAt", code="invalid_expires_at")
        expires_at = _expires_at(doc["expiresAt"])
    movement = ledger.Movement(kind, _credits(doc), ref, expires_at=expires_at)
    async with request.app[DB].acquire() as conn:
        out, new = await ledger.move(
            conn, tenant_id, customer, movement, actor=_actor(request), request_id=request.get(REQUEST_ID)
        )
    return json_response(out, 201 if new else 200)


@routes.post("/v1/credits/{customer}/burn")
async def credit_burn(request: web.Request) -> web.Response:
    """Burn credits: a number of credits, or units of a meter at the plan's burn rate (409 when not covered)."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    doc = await json_object(request)
    unknown = sorted(set(doc) - {"credits", "meter", "units", "reference"})
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code="invalid_credit_entry")
    ref = _reference(doc)
    async with request.app[DB].acquire() as conn:
        if "meter" in doc:
            meter = doc["meter"]
            if not isinstance(meter, str) or "credits" in doc:
                raise ValidationFailed("give credits, or meter and units", code="invalid_credit_entry")
            plans.check_key(meter, "meter")
            units = _credits(doc, "units")
            rate, per, negative = await ledger.burn_rate(conn, tenant_id, customer, meter)
            movement = ledger.Movement("burn", -(-units * rate // per), ref, meter, units)
        else:
            _, _, negative = await ledger.burn_rate(conn, tenant_id, customer, "")
            movement = ledger.Movement("burn", _credits(doc), ref)
        out, _ = await ledger.move(
            conn,
            tenant_id,
            customer,
            movement,
            actor=_actor(request),
            request_id=request.get(REQUEST_ID),
            allow_negative=negative,
        )
    return json_response(out)


_CHARGE_KEY = re.compile(ledger.CHARGE_KEY_PATTERN)


def _charge_key(value: Any) -> str:
    if not isinstance(value, str) or not _CHARGE_KEY.fullmatch(value):
        raise ValidationFailed("key must be 1-160 characters of A-Z a-z 0-9 _ . : @ -", code="invalid_charge_key")
    return value


@routes.post("/v1/credits/{customer}/charges")
async def credit_charge(request: web.Request) -> web.Response:
    """Charge one request in credits, once per key (201; 200 answers the standing burn of a repeated key; 409
    ``insufficient_credits``): what a paywall with a remote ledger calls per request."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    doc = await json_object(request)
    unknown = sorted(set(doc) - {"key", "credits", "meter", "units"})
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code="invalid_credit_entry")
    key = _charge_key(doc.get("key"))
    meter: str | None = None
    credits = units = None
    if "meter" in doc:
        if not isinstance(doc["meter"], str) or "credits" in doc:
            raise ValidationFailed("give credits, or meter and units", code="invalid_credit_entry")
        meter = plans.check_key(doc["meter"], "meter")
        units = _credits(doc, "units")
    else:
        credits = _credits(doc)
    async with request.app[DB].acquire() as conn:
        out, new = await ledger.charge(
            conn,
            tenant_id,
            customer,
            key,
            credits=credits,
            meter=meter,
            units=units,
            actor=_actor(request),
            request_id=request.get(REQUEST_ID),
        )
    return json_response(out, 201 if new else 200)


@routes.get("/v1/credits/{customer}/charges/{key}")
async def credit_charge_state(request: web.Request) -> web.Response:
    """The last attempt of a charge key: credits, and ``state`` ``held`` (burned, the handler has not answered),
    ``captured`` (answered: final) or ``refunded`` (404 ``charge_not_found``)."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    key = _charge_key(request.match_info["key"])
    async with request.app[DB].acquire() as conn:
        return json_response(await ledger.get_charge(conn, tenant_id, customer, key))


@routes.post("/v1/credits/{customer}/charges/{key}/capture")
async def credit_charge_capture(request: web.Request) -> web.Response:
    """The handler answered: the key's held charge becomes ``captured`` (200, also when it was captured before;
    409 ``charge_refunded`` when it was refunded first, e.g. by the hold pass; 404 ``charge_not_found``)."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    key = _charge_key(request.match_info["key"])
    async with request.app[DB].acquire() as conn:
        out = await ledger.capture_charge(conn, tenant_id, customer, key)
    if out["state"] == "refunded":
        raise Conflict("this charge was refunded before it was captured", code="charge_refunded")
    return json_response(out)


@routes.post("/v1/credits/{customer}/charges/{key}/refund")
async def credit_charge_refund(request: web.Request) -> web.Response:
    """Give back the standing burn of a charge key (the handler failed): a ``burn_refund`` entry (201; 200 when it
    was already refunded; 404 ``charge_not_found``)."""
    tenant_id = caller_tenant(request)
    customer = plans.check_customer(request.match_info["customer"])
    key = _charge_key(request.match_info["key"])
    async with request.app[DB].acquire() as conn:
        out, new = await ledger.refund_charge(
            conn, tenant_id, customer, key, actor=_actor(request), request_id=request.get(REQUEST_ID)
        )
    return json_response(out, 201 if new else 200)
