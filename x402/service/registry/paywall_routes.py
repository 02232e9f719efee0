"""The service's paywall start-up subscriber: list the paywall's paid routes in the registry (discovery)."""

from __future__ import annotations

from aiohttp import web

from x402.errors import BadRequest
from x402.logs import get_logger
from x402.paywall import Paywall
from x402.paywall.listing import listed_routes
from x402.service.appkeys import REGISTRY, SETTINGS
from x402.service.registry.models import draft_from_json

log = get_logger("x402.paywall")


async def list_paywall_routes(app: web.Application, paywall: Paywall) -> None:
    """List ``paywall``'s paid routes in ``app``'s resource registry (so they appear in discovery).

    Needs an absolute base URL: the paywall's ``public_url`` or the service's ``X402_PUBLIC_URL``; a paywall opts
    out with ``register=False``.
    """
    from x402.service.registry import register_resources

    store = app.get(REGISTRY)
    if store is None or not paywall.paid_routes:
        return
    base = paywall.public_url or (app[SETTINGS].public_url if SETTINGS in app else None)
    if not base:
        log.info("paywall_routes_not_registered", detail="set public_url or X402_PUBLIC_URL to list them")
        return
    drafts = []
    for _method, body in listed_routes(paywall, base):
        try:
            drafts.append(draft_from_json(body))
        except BadRequest as exc:  # e.g. a description over the registry's limit: listed without it is wrong too
            log.warning("paywall_route_not_registered", url=body["url"], code=exc.code, detail=exc.detail)
    registered = await register_resources(store, drafts)
    log.info("paywall_routes_registered", count=len(registered))
