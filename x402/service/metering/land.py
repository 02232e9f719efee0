"""Landing usage events: one statement, then in the same transaction the limit warnings and the cache notification;
this process's cached answers are dropped at once (the NOTIFY reaches the other processes)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from aiohttp import web

from x402.service.appkeys import DB, METERING
from x402.service.metering import plans
from x402.service.metering.ingest import BatchResult, UsageEvent, store


def evict(app: web.Application, tenant_id: uuid.UUID | None, customers: set[str]) -> None:
    """Drop this process's cached entitlements of ``customers`` (``*``: all of the tenant's)."""
    cache, tenant = app[METERING], plans.tenant_text(tenant_id)
    for customer in customers:
        cache.evict(f"{tenant}|{customer}")


async def land(
    app: web.Application, tenant_id: uuid.UUID | None, events: Sequence[UsageEvent], result: BatchResult
) -> BatchResult:
    """Store ``events`` (committed before this returns) and account for the new ones."""
    async with app[DB].acquire() as conn, conn.transaction():
        await store(conn, tenant_id, events, result)
        if result.accepted:
            landed = set(result.accepted)
            pairs = {(e.customer, e.meter) for e in events if e.id in landed}
            await plans.warn(conn, tenant_id, pairs)
            await plans.notify(conn, tenant_id, {c for c, _ in pairs})
    evict(app, tenant_id, {e.customer for e in events})
    return result
