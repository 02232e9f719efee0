"""Credit top-ups over x402: ``POST /v1/credits/{customer}/topup`` answers 402 with the price of a credit pack.

The pack (``X402_CREDIT_PACK``) is a number of credits and one or more offers (networks, assets, schemes); the 402
lists them all and paying any one grants the same credits. With ``expiresIn`` (seconds) the bought credits expire
that long after the purchase (the ledger spends them before credits that never expire).

The service's own paywall (x402/paywall) guards the route with the in-process facilitator and settles before the
handler runs, so credits are granted only for money that moved; the grant is keyed by the payment id, so a retried
payment (the paywall replays a settled purchase to its payer) grants once. The tenant is the caller's API key's,
or, for a payer without a key (an agent paying from its wallet), the ``tenant`` query parameter; both are checked
before any payment is asked for.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aiohttp import web

from x402.errors import ConfigError, NotFound, Unauthorized
from x402.paywall import PAYMENT, Offer, Paywall
from x402.paywall.middleware import Handler
from x402.service.appkeys import CACHE, DB, SETTINGS, TOPUP_PAYWALL
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.http import json_response
from x402.service.metering import ledger, plans
from x402.service.middleware import REQUEST_ID
from x402.service.platform.auth import principal_of
from x402.service.storage.scope import tenant_scope

TOPUP_PATH: Final = "/v1/credits/{customer}/topup"
#: The tenant a keyless top-up is for (set by the pre-check, read by the handler).
_TENANT: web.RequestKey[uuid.UUID | None] = web.RequestKey("x402_topup_tenant")


#: Keys of one way to pay for the pack (``X402_CREDIT_PACK`` itself, or each entry of its ``offers``).
_OFFER_KEYS: Final = ("amount", "network", "asset", "payTo")


def _offer(doc: Any, credits: int, where: str) -> Offer:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where} must be a JSON object with {', '.join(_OFFER_KEYS)}")
    missing = [key for key in _OFFER_KEYS if key not in doc]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(_OFFER_KEYS)} (missing {', '.join(missing)})")
    try:
        return Offer(
            amount=int(doc["amount"]),
            asset=str(doc["asset"]),
            network=str(doc["network"]),
            pay_to=str(doc["payTo"]),
            extra=dict(doc.get("extra") or {}),
            scheme=str(doc.get("scheme") or "exact"),
            description=f"{credits} prepaid credits",
            mime_type="application/json",
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def pack_offers(pack: Mapping[str, Any]) -> tuple[int, tuple[Offer, ...]]:
    """(credits, offers) of the configured pack; ConfigError when it is malformed.

    The pack is ``{credits, amount, network, asset, payTo, extra?, scheme?}`` (one way to pay) or
    ``{credits, offers: [{amount, network, asset, payTo, extra?, scheme?}, ...]}`` (the same credits for any of them).
    """
    try:
        credits = int(pack["credits"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError("X402_CREDIT_PACK needs credits, a positive integer") from None
    if credits < 1:
        raise ConfigError("X402_CREDIT_PACK credits must be positive")
    if "offers" not in pack:
        return credits, (_offer(pack, credits, "X402_CREDIT_PACK"),)
    docs = pack["offers"]
    if not isinstance(docs, list) or not docs:
        raise ConfigError("X402_CREDIT_PACK offers must be a non-empty JSON array")
    if any(key in pack for key in _OFFER_KEYS):
        raise ConfigError("X402_CREDIT_PACK has offers: put amount, network, asset and payTo in each offer")
    offers = tuple(_offer(doc, credits, f"X402_CREDIT_PACK offers[{i}]") for i, doc in enumerate(docs))
    seen: set[tuple[str, str, str, Any]] = set()
    for i, offer in enumerate(offers):
        key = (offer.scheme, offer.network, offer.asset.lower(), (offer.extra or {}).get("assetTransferMethod"))
        if key in seen:
            raise ConfigError(f"X402_CREDIT_PACK offers[{i}] repeats the scheme, network and asset of an earlier offer")
        seen.add(key)
    return credits, offers


#: The longest ``expiresIn`` of a pack (ten years), so an expiry date always fits.
MAX_EXPIRES_IN: Final = 10 * 366 * 86400


def pack_expiry(pack: Mapping[str, Any]) -> timedelta | None:
    """How long the pack's credits last after the purchase (``expiresIn`` seconds; None: they never expire)."""
    raw = pack.get("expiresIn")
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw <= MAX_EXPIRES_IN:
        raise ConfigError(f"X402_CREDIT_PACK expiresIn must be a number of seconds from 1 to {MAX_EXPIRES_IN}")
    return timedelta(seconds=raw)


async def _tenant_of(request: web.Request) -> uuid.UUID | None:
    """The tenant a top-up is for: the key's, or the ``tenant`` query parameter of a keyless payer (must exist)."""
    principal = principal_of(request)
    if principal is not None and principal.tenant_id is not None:
        return principal.tenant_id
    raw = request.query.get("tenant", "")
    if not raw:
        if request.app[SETTINGS].require_api_keys:
            raise Unauthorized("an API key or the tenant query parameter is required", code="api_key_required")
        return None
    try:
        tenant = uuid.UUID(raw)
    except ValueError:
        raise NotFound("no such tenant", code="tenant_not_found") from None
    with tenant_scope(tenant):
        async with request.app[DB].acquire() as conn:
            found = await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1 AND status = 'active'", tenant)
    if not found:
        raise NotFound("no such tenant", code="tenant_not_found")
    return tenant


@web.middleware
async def topup_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check tenant and customer first (no payment is asked for a top-up that cannot land), then the paywall."""
    route = request.match_info.route.resource
    if route is None or route.canonical != TOPUP_PATH or request.method != "POST":
        return await handler(request)
    plans.check_customer(request.match_info["customer"])
    tenant = await _tenant_of(request)
    request[_TENANT] = tenant
    with tenant_scope(tenant):
        return await request.app[TOPUP_PAYWALL].middleware(request, handler)


async def topup(request: web.Request) -> web.Response:
    """Paid: grant the pack's credits, once per payment (keyed by its payment id)."""
    payment = request[PAYMENT]
    tenant = request[_TENANT]
    customer = request.match_info["customer"]
    pack = request.app[SETTINGS].credit_pack or {}
    credits, _ = pack_offers(pack)
    lasts = pack_expiry(pack)
    expires_at = None if lasts is None else datetime.now(UTC) + lasts
    movement = ledger.Movement("purchase", credits, f"x402:{payment.payment_id}", expires_at=expires_at)
    async with request.app[DB].acquire() as conn:
        out, new = await ledger.move(
            conn, tenant, customer, movement, actor=f"payer:{payment.payer}", request_id=request.get(REQUEST_ID)
        )
    return json_response({**out, "customer": customer, "paymentId": payment.payment_id}, 201 if new else 200)


def install(app: web.Application) -> None:
    """Mount the top-up route and its paywall when a credit pack is configured."""
    pack = app[SETTINGS].credit_pack
    if not pack:
        return
    _, offers = pack_offers(pack)  # a malformed pack stops the start-up here
    pack_expiry(pack)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        paywall = Paywall(
            AppFacilitator(app),
            routes={("POST", TOPUP_PATH): list(offers)},
            cache=app[CACHE],
            max_header_bytes=settings.max_header_bytes,
            settle_before_handler=True,  # credits only for money that moved
            register=False,
        )
        await paywall.start(app)
        app[TOPUP_PAYWALL] = paywall
        yield
        await paywall.close()

    app.router.add_post(TOPUP_PATH, topup)
    app.middlewares.append(topup_middleware)
    app.cleanup_ctx.append(ctx)
