"""The aiohttp application factory: every pool, client and task lives in ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from chains.registry import AdapterFactory, build_registry, load_factories
from x402.cache import create_cache
from x402.logs import get_logger
from x402.service import (
    dashboard,  # eager: it reads its templates and static files when first imported
    saturation,
)
from x402.service.appkeys import (
    CACHE,
    CHAINS,
    DB,
    DEV_INFO,
    EXTENSION_HANDLERS,
    EXTENSIONS,
    METRICS,
    OPTIONS,
    SETTINGS,
    AppOptions,
)
from x402.service.metrics import Metrics
from x402.service.middleware import request_middleware
from x402.service.platform import install as platform  # eager: the limits package reads files when first imported
from x402.service.rejections import handler_args
from x402.service.routes import health, manifest
from x402.service.settings import Settings
from x402.service.storage.db import create_pool, migrate_url
from x402.service.storage.walls import create_walled_pool

log = get_logger("x402.service.app")

#: Extra set-up steps added by feature modules (facilitator, paywall, ...): each gets the app.
Installer = Callable[[web.Application], None]


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (x402 serve starts an embedded Postgres when it is unset)")
    if settings.migrate_on_start:
        # as the connecting role: the pool below may run as the RLS-bound application role, which owns nothing
        await migrate_url(settings.database_url)
    if settings.row_security:
        pool = await create_walled_pool(settings.database_url, min_size=1, max_size=settings.db_pool_size)
    else:
        pool = await create_pool(settings.database_url, min_size=1, max_size=settings.db_pool_size)
    app[DB] = pool
    yield
    await pool.close()


async def _cache(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    cache = create_cache(settings.redis_url)
    if cache.kind == "memory":
        log.warning(
            "single_node_mode",
            detail="REDIS_URL is not set: rate limits, velocity counters and caches are in-process (one node only)",
        )
    app[CACHE] = cache
    yield
    await cache.close()


def _chains(factories: dict[str, AdapterFactory]) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        registry = build_registry(app[SETTINGS].chain_options(), factories)
        app[CHAINS] = registry
        for net in registry.networks():
            log.info("network_configured", network=net)
        yield
        await registry.close()

    return ctx


def create_app(
    settings: Settings,
    *,
    factories: dict[str, AdapterFactory] | None = None,
    installers: list[Installer] | None = None,
    options: AppOptions | None = None,
) -> web.Application:
    """Build the service application for ``settings``."""
    app = web.Application(
        middlewares=[request_middleware],
        client_max_size=settings.max_body_bytes,
        handler_args=handler_args(settings.max_header_bytes),
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics.create()
    app[OPTIONS] = options or AppOptions()
    app[EXTENSIONS] = []
    app[EXTENSION_HANDLERS] = []
    app[DEV_INFO] = dict(settings.dev_state.get("public", {})) if settings.dev_state else {}
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_cache)
    # entry points are read (and adapter modules imported) here, outside the event loop
    app.cleanup_ctx.append(_chains(load_factories() if factories is None else factories))
    app.add_routes(health.routes)
    app.add_routes(manifest.routes)
    for install in default_installers() + list(installers or []):
        install(app)
    saturation.install(app)  # last: it reads the pool, chains and platform the contexts above set up
    if settings.dev_state:
        from x402.service import demo  # dev only: GET /demo/paid behind the paywall

        demo.install(app)
    return app


def default_installers() -> list[Installer]:
    """Feature modules mounted on every service app."""
    from x402.service import mcp_gateway, proxy, registry, risk_api, wallets_api
    from x402.service.analytics import routes as analytics
    from x402.service.events import service as events
    from x402.service.facilitator import routes as facilitator
    from x402.service.metering import service as metering
    from x402.service.trust import api as trust

    # the platform first: it sets the facilitator's authorizer and outcome hooks before their defaults
    return [
        platform.install,
        risk_api.install,
        facilitator.install,
        registry.install,
        trust.install,
        wallets_api.install,
        mcp_gateway.install,
        events.install,
        proxy.install,
        analytics.install,
        dashboard.install,
        metering.install,
    ]
