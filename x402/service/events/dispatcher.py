"""The dispatcher: fans undispatched provider events out to the matching endpoints as deliveries.

One statement per batch claims the oldest undispatched events (``FOR UPDATE SKIP LOCKED``, so several processes
share the work and never dispatch an event twice), inserts one delivery per active endpoint of the event's tenant
whose filter names its type (or ``*``), and marks the events dispatched. Passes are serialised across processes by
a transaction advisory lock, so events are dispatched, and their deliveries queued, in ``seq`` order.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from x402.service.events.outbox import Conn

#: Serialises dispatch passes across processes (seq order of the deliveries they queue).
DISPATCH_LOCK: Final = 0x78343135

_DISPATCH: Final = """
WITH ev AS (
    SELECT seq, id, tenant_id, type FROM provider_events WHERE NOT dispatched
    ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
), fan AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id, event_seq)
    SELECT w.id, ev.id, ev.seq FROM ev JOIN webhook_endpoints w
      ON w.tenant_id IS NOT DISTINCT FROM ev.tenant_id AND (ev.type = ANY (w.events) OR '*' = ANY (w.events))
    WHERE w.active
    ORDER BY ev.seq
    ON CONFLICT DO NOTHING
    RETURNING 1
), done AS (
    UPDATE provider_events p SET dispatched = true FROM ev WHERE p.seq = ev.seq RETURNING 1
)
SELECT (SELECT count(*) FROM done) AS events, (SELECT count(*) FROM fan) AS deliveries
"""


async def dispatch(conn: Conn, batch: int = 1000) -> tuple[int, int]:
    """One pass in its own transaction: (events dispatched, deliveries queued); (0, 0) if another node holds it."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", DISPATCH_LOCK):
            return 0, 0
        row = await conn.fetchrow(_DISPATCH, batch)
    assert row is not None
    return int(row["events"]), int(row["deliveries"])


async def dispatch_all(pool: asyncpg.Pool, batch: int = 1000) -> int:
    """Dispatch until nothing is left (or another node is at it); returns events dispatched."""
    total = 0
    async with pool.acquire() as conn:
        while True:
            n, _ = await dispatch(conn, batch)
            total += n
            if n < batch:
                return total
