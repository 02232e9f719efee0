"""The registry of paid resources: registration, crawl and verification, bazaar cataloguing, discovery and search.

Mount with ``install(app)`` (a default installer). Other modules use ``REGISTRY`` (the store on the app),
``register_resources`` (called by ``paywall_routes``, the service's paywall start-up subscriber) and
``manifest.openapi_payment_info`` (for /openapi.json).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from aiohttp import web

from x402.service.appkeys import BAZAAR, DB, EXTENSION_HANDLERS, EXTENSIONS, OUTBOUND, REGISTRY, SETTINGS
from x402.service.registry.bazaar import BazaarCatalog
from x402.service.registry.models import Resource, ResourceDraft, draft_from_json
from x402.service.registry.outbound import Outbound
from x402.service.registry.store import PgRegistryStore, RegistryStore, Verification
from x402.service.storage.scope import system_scope

__all__ = ["BAZAAR", "OUTBOUND", "REGISTRY", "ResourceDraft", "install", "register_resources"]


async def register_resources(
    registry_store: RegistryStore, items: Iterable[ResourceDraft | Mapping[str, Any]]
) -> list[Resource]:
    """Register this service's own paid routes (paywall start-up): local, verified, idempotent per (url, method).

    ``items`` are drafts or ``POST /v1/resources``-shaped JSON objects; a bad item raises BadRequest.
    """
    out: list[Resource] = []
    for item in items:
        draft = item if isinstance(item, ResourceDraft) else draft_from_json(dict(item))
        stored = await registry_store.upsert(
            draft,
            tenant_id=None,
            source="local",
            local=True,
            verification=Verification("verified", None, {"kind": "local"}),
        )
        if stored is not None:
            out.append(stored)
    return out


async def _registry_ctx(app: web.Application) -> AsyncIterator[None]:
    import asyncio

    from x402.service.registry.prober import probe_loop

    settings = app[SETTINGS]
    store = PgRegistryStore(app[DB])
    outbound = Outbound(allow_private=settings.allow_private_outbound)
    await outbound.start()
    app[REGISTRY] = store
    app[OUTBOUND] = outbound
    with system_scope("registry catalogue and prober: they refresh resources of every owner"):
        await app[BAZAAR].start(store)
        every = settings.registry_probe_interval
        task = asyncio.create_task(probe_loop(store, outbound, every)) if every > 0 else None
    yield
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    await app[BAZAAR].stop()
    await outbound.close()


def install(app: web.Application) -> None:
    """Mount the registry: routes, the bazaar extension (``/supported`` lists it), store and probes."""
    from x402.paywall.middleware import PAYWALL_STARTED
    from x402.service.registry.paywall_routes import list_paywall_routes
    from x402.service.registry.routes import routes

    catalog = BazaarCatalog()
    app[BAZAAR] = catalog
    if "bazaar" not in app[EXTENSIONS]:
        app[EXTENSIONS].append("bazaar")
    app[EXTENSION_HANDLERS].append(catalog)
    app.cleanup_ctx.append(_registry_ctx)
    # the paywall knows nothing of the registry: the service subscribes to its start-up to list its routes
    app.setdefault(PAYWALL_STARTED, []).append(list_paywall_routes)
    app.add_routes(routes)
