"""The service's paywall start-up subscriber: list the paywall's paid routes in the registry (discovery)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from x402.logs import get_logger
from x402.paywall import Paywall
from x402.service.appkeys import REGISTRY, SETTINGS
from x402.service.registry.models import ResourceDraft

log = get_logger("x402.paywall")


async def list_paywall_routes(app: web.Application, paywall: Paywall) -> None:
    """List ``paywall``'s paid routes in ``app``'s resource registry (so they appear in discovery).

    Needs an absolute base URL: the paywall's ``public_url`` or the service's ``X402_PUBLIC_URL``; a paywall opts
    out with ``register=False``.
    """
    from x402.service.registry import register_resources

    store = app.get(REGISTRY)
    paid_routes = paywall.paid_routes
    if store is None or not paid_routes:
        return
    base = paywall.public_url or (app[SETTINGS].public_url if SETTINGS in app else None)
    if not base:
        log.info("paywall_routes_not_registered", detail="set public_url or X402_PUBLIC_URL to list them")
        return
    drafts = []
    for (method, path), route in paid_routes:
        if "{" in path:  # parameterised routes are declared through the bazaar routeTemplate instead
            continue
        challenge = paywall.challenges.get(route, base.rstrip("/") + path)
        extensions = route.all_extensions()
        bazaar = extensions.get("bazaar") if extensions else None
        info = bazaar.get("info") if isinstance(bazaar, dict) else None
        drafts.append(
            ResourceDraft(
                url=challenge.resource.url,
                method=method,
                accepts=[msgspec.to_builtins(r) for r in challenge.requirements],
                description=route.description,
                mime_type=route.mime_type,
                input_schema=info.get("input") if isinstance(info, dict) else None,
                output_schema=info.get("output") if isinstance(info, dict) else None,
                extensions=extensions or None,
            )
        )
    registered = await register_resources(store, drafts)
    log.info("paywall_routes_registered", count=len(registered))
