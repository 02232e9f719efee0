"""The metering feature of one process: its routes, the entitlement cache (with its NOTIFY listener) and the
periodic credit expiry pass and the pass that refunds credit charges held past the hold timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from x402.logs import get_logger
from x402.service.appkeys import DB, METERING, SETTINGS
from x402.service.metering.cache import EntitlementCache
from x402.service.metering.ledger import expire_due, release_due
from x402.service.storage.scope import system_scope

log = get_logger("x402.metering")


async def _expiry_loop(pool: asyncpg.Pool, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            n = await expire_due(pool)
        except Exception as exc:  # a missed pass is retried next round; it must not end the loop
            log.warning("credit_expiry_failed", error=type(exc).__name__)
            continue
        if n:
            log.info("credits_expired", lots=n)


async def _hold_loop(pool: asyncpg.Pool, interval: float, timeout: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            n = await release_due(pool, timeout)
        except Exception as exc:  # a missed pass is retried next round; it must not end the loop
            log.warning("credit_hold_pass_failed", error=type(exc).__name__)
            continue
        if n:
            log.info("credit_holds_refunded", charges=n)


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    cache = EntitlementCache(app[SETTINGS].database_url)
    app[METERING] = cache
    cache.start()
    interval = app[SETTINGS].credit_expiry_interval
    expiry = None
    if interval > 0:
        with system_scope("credit expiry: lots past their date, of every tenant"):
            expiry = asyncio.create_task(_expiry_loop(app[DB], interval))
    holds = None
    if app[SETTINGS].credit_hold_interval > 0:
        with system_scope("credit holds: charges held past the hold timeout, of every tenant"):
            holds = asyncio.create_task(
                _hold_loop(app[DB], app[SETTINGS].credit_hold_interval, app[SETTINGS].credit_hold_timeout)
            )
    yield
    for task in (expiry, holds):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await cache.close()


def install(app: web.Application) -> None:
    """Mount the metering API (after the database context)."""
    from x402.service.metering import topup
    from x402.service.metering.routes import routes

    app.cleanup_ctx.append(_ctx)
    app.add_routes(routes)
    topup.install(app)
