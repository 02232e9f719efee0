"""The connection every analytics read runs on: one read-only snapshot, no JIT, 32 MB of work memory.

The queries of one answer (a time series runs several) then see the same records, and Postgres does not JIT-compile
them: their cost estimates cross ``jit_above_cost`` while they run in milliseconds, and compiling took seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn = asyncpg.Connection | PoolConnectionProxy


@contextlib.asynccontextmanager
async def reading(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A pooled connection in a read-only repeatable-read transaction with JIT off and ``work_mem`` 32 MB."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # and enough memory for a breakdown's hash aggregates over ~100k rows not to spill to disk
        await conn.execute("SET LOCAL jit = off; SET LOCAL work_mem = '32MB'")
        yield conn
