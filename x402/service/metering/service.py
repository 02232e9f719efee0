"""The metering feature of one process: its routes and the entitlement cache (with its NOTIFY listener)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from x402.service.appkeys import METERING, SETTINGS
from x402.service.metering.cache import EntitlementCache


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    cache = EntitlementCache(app[SETTINGS].database_url)
    app[METERING] = cache
    cache.start()
    yield
    await cache.close()


def install(app: web.Application) -> None:
    """Mount the metering API (after the database context)."""
    from x402.service.metering import topup
    from x402.service.metering.routes import routes

    app.cleanup_ctx.append(_ctx)
    app.add_routes(routes)
    topup.install(app)
