"""Mount the platform on a service app: state in cleanup_ctx, middleware, facilitator hooks, routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from x402.cache import RedisCache
from x402.logs import get_logger
from x402.service.appkeys import AUTHORIZER, CACHE, DB, METRICS, OUTCOME, PLATFORM, SETTINGS
from x402.service.events.mail import QuotaMailer, SmtpConfig
from x402.service.platform import admin_routes, deadletters, deadletters_routes, openapi, payments_routes, payto_claims
from x402.service.platform.auth import Authenticator
from x402.service.platform.context import Platform
from x402.service.platform.hooks import authorize, outcome_recorder, platform_middleware
from x402.service.platform.idempotency import purge_expired
from x402.service.platform.limiting import QuotaCounter, RateLimiter
from x402.service.platform.sessions import SessionStore
from x402.service.platform.tenants import TenantStore
from x402.service.platform.tiers import load_tiers
from x402.service.platform.writer import PaymentWriter
from x402.service.storage.scope import system_scope

log = get_logger("x402.service.platform")
PURGE_EVERY = 600.0


async def _purge_loop(platform: Platform) -> None:
    while True:
        await asyncio.sleep(PURGE_EVERY)
        try:
            n = await purge_expired(platform.store.pool)
        except Exception as exc:  # a missed purge is retried next round; it must not end the loop
            log.warning("idempotency_purge_failed", error=type(exc).__name__)
            continue
        if n:
            log.info("idempotency_keys_purged", count=n)
        try:
            n = await platform.sessions.purge_expired()
        except Exception as exc:  # retried next round, like the idempotency purge
            log.warning("session_purge_failed", error=type(exc).__name__)
            continue
        if n:
            log.info("dashboard_sessions_purged", count=n)


async def _platform_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool, cache = app[DB], app[CACHE]
    tiers = load_tiers(settings.tiers_override)
    redis_pool = cache.client.connection_pool if isinstance(cache, RedisCache) else None
    writer = PaymentWriter(pool, metrics=app[METRICS])
    smtp = SmtpConfig.from_settings(settings)
    mailer = QuotaMailer(smtp) if smtp is not None else None
    auth = Authenticator(pool, settings.admin_token, allow_test_keys=settings.dev)
    platform = Platform(
        settings=settings,
        tiers=tiers,
        store=TenantStore(pool, frozenset(tiers)),
        auth=auth,
        limiter=RateLimiter(settings.redis_url, redis_pool),
        quota=QuotaCounter(cache, pool, mailer.notify if mailer is not None else None),
        writer=writer,
        sessions=SessionStore(pool, auth, settings.dashboard_idle_seconds),
    )
    app[PLATFORM] = platform
    with system_scope("idempotency purge: expired keys of every tenant"):
        purge = asyncio.create_task(_purge_loop(platform))
    with system_scope("record dead letters: retried batches carry the records of many tenants"):
        retry = (
            asyncio.create_task(deadletters.retry_loop(pool, settings.dead_letter_retry_interval))
            if settings.dead_letter_retry_interval > 0
            else None
        )
    yield
    for task in (purge, retry):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    # every record a handler queued is committed before the pool closes
    await writer.close()
    if mailer is not None:
        await mailer.close()


def install(app: web.Application) -> None:
    """Add the platform to an app built by ``create_app`` (before the facilitator installs its defaults)."""
    app.cleanup_ctx.append(_platform_ctx)
    app.middlewares.append(platform_middleware)
    app[AUTHORIZER] = authorize
    app[OUTCOME] = outcome_recorder(app)
    app.add_routes(admin_routes.routes)
    app.add_routes(deadletters_routes.routes)
    app.add_routes(payments_routes.routes)
    app.add_routes(payto_claims.routes)
    app.add_routes(openapi.routes)
