"""Fold pending payment records into the analytics rollups (``x402_analytics_fold``, migration 0021).

Each call moves up to ``batch`` records in one transaction (the rows are deleted from ``analytics_pending`` and
added to the rollups together; rows another process is folding are skipped), so each record is folded exactly
once however many service processes run the loop. Readers add the pending rows to the rollups, so a late fold
never changes a figure; folding only keeps the reads small.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from x402.logs import get_logger
from x402.service.appkeys import DB, SETTINGS
from x402.service.storage.scope import system_scope

log = get_logger("x402.service.analytics")

#: Most records one fold moves (a full batch is followed by the next one at once).
FOLD_BATCH = 20_000


async def fold_pending(pool: asyncpg.Pool, batch: int = FOLD_BATCH) -> int:
    """Fold up to ``batch`` pending records; how many were folded."""
    with system_scope("analytics folder: pending payment records of every tenant"):
        n = await pool.fetchval("SELECT x402_analytics_fold($1)", batch)
    return int(n or 0)


async def fold_all(pool: asyncpg.Pool) -> int:
    """Fold until nothing is pending; how many were folded."""
    total = 0
    while n := await fold_pending(pool):
        total += n
    return total


async def _loop(pool: asyncpg.Pool, every: float) -> None:
    while True:
        try:
            n = await fold_pending(pool)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            # the rows stay pending (readers still count them); the next round retries
            log.warning("analytics_fold_failed", error=type(exc).__name__)
            n = 0
        if n < FOLD_BATCH:
            await asyncio.sleep(every)


async def folder_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the fold loop while the app runs (every ``X402_ANALYTICS_FOLD_INTERVAL`` seconds; 0 = not here)."""
    every = app[SETTINGS].analytics_fold_interval
    if every <= 0:
        yield
        return
    task = asyncio.create_task(_loop(app[DB], every), name="analytics-folder")
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
