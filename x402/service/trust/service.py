"""Keeps ``trust_scores`` current: a background pass recomputes the subjects whose records changed since the
watermark (routed calls, settlements, wallet payments, probes, and risk-list entries added or removed for an
address they read), in ``system_scope``; routed calls also refresh their resource and wallet on write. Lookups for
the wallet policy, the risk assessment and registry search.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import asyncpg

from risk.addresses import normalize_address
from wallets.events import Conn
from x402.logs import get_logger
from x402.service.storage.scope import system_scope
from x402.service.trust import store

log = get_logger("x402.trust")

#: How long the payment path reuses an address score it read (``address_score``): scores change only when a pass
#: recomputes them (every ``interval`` s), and a pass in this process empties the cache at once.
ADDRESS_TTL = 5.0
_MAX_CACHED = 50_000


class TrustService:
    """Scores of one process; ``refresh`` is one incremental pass, ``start`` runs it every ``interval`` seconds."""

    def __init__(self, pool: asyncpg.Pool, interval: float) -> None:
        self.pool = pool
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._ttl = min(ADDRESS_TTL, interval) if interval > 0 else ADDRESS_TTL
        self._addresses: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def refresh(self) -> int:
        """Recompute every subject touched since the watermark; returns how many scores were written."""
        try:
            return await self._refresh()
        finally:
            self._addresses.clear()  # what this process answers next is the new score

    async def _refresh(self) -> int:
        with system_scope("trust scores: recomputed from every tenant's records (aggregates only)"):
            async with self.pool.acquire() as conn, conn.transaction():
                # one pass at a time; the watermark moves to the start of this pass (a write during it is seen again)
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('x402_trust_refresh'))")
                started = await conn.fetchval("SELECT now()")
                seen = await conn.fetchval("SELECT seen_at FROM trust_watermark")
                since = seen if seen is not None else started.replace(year=1970)
                resources = await conn.fetch(
                    """SELECT DISTINCT resource_id AS id FROM calls WHERE created_at >= $1
                       UNION SELECT id FROM resources WHERE last_probe_at >= $1 OR created_at >= $1""",
                    since,
                )
                addresses = await conn.fetch(store.CHANGED_PAYERS, since)
                wallets = await conn.fetch(
                    """SELECT DISTINCT wallet_id AS id FROM wallet_payments
                       WHERE created_at >= $1 OR settled_at >= $1
                       UNION SELECT wallet_id FROM calls WHERE created_at >= $1""",
                    since,
                )
                listed = await store.listed_since(conn, since)
                res_ids = {r["id"] for r in resources}
                payers = {r["a"] for r in addresses}
                wallet_ids = {r["id"] for r in wallets}
                if listed:
                    # a risk-list change moves the riskFlags factor of every score that reads that address
                    touched = await store.touched_by(conn, listed)
                    res_ids |= touched.resources
                    payers |= touched.addresses
                    wallet_ids |= touched.wallets
                n = 0
                for rid in sorted(res_ids):
                    n += await self._resource(conn, rid)
                for a in sorted(payers):
                    await store.save(conn, "address", a, await store.address_history(conn, a))
                    n += 1
                for wid in sorted(wallet_ids):
                    n += await self._wallet(conn, wid)
                await conn.execute(
                    """INSERT INTO trust_watermark (id, seen_at) VALUES (true, $1)
                       ON CONFLICT (id) DO UPDATE SET seen_at = $1""",
                    started,
                )
        return n

    @staticmethod
    async def _resource(conn: Conn, resource_id: uuid.UUID) -> int:
        history = await store.resource_history(conn, resource_id)
        if history is None:
            return 0
        await store.save(conn, "resource", str(resource_id), history)
        return 1

    @staticmethod
    async def _wallet(conn: Conn, wallet_id: uuid.UUID) -> int:
        history = await store.wallet_history(conn, wallet_id)
        if history is None:
            return 0
        await store.save(conn, "wallet", str(wallet_id), history)
        return 1

    async def on_call(self, resource_id: uuid.UUID, wallet_id: uuid.UUID) -> None:
        """Recompute the resource and wallet of a routed call just recorded (on write)."""
        with system_scope("trust scores: a routed call changed its resource's and wallet's history"):
            async with self.pool.acquire() as conn:
                await self._resource(conn, resource_id)
                await self._wallet(conn, wallet_id)

    async def wallet(self, wallet_id: uuid.UUID) -> dict[str, Any]:
        """Recompute and return a wallet's score (its owner asked for it)."""
        with system_scope("trust scores: one wallet's score, asked for by its owner"):
            async with self.pool.acquire() as conn:
                history = await store.wallet_history(conn, wallet_id)
                if history is None:
                    return {"score": 0, "factors": {}}
                return await store.save(conn, "wallet", str(wallet_id), history)

    async def get(self, kind: str, subject: str) -> dict[str, Any] | None:
        """A stored score (scores are aggregates, readable in any scope)."""
        with system_scope("trust scores: a global table of aggregates"):
            async with self.pool.acquire() as conn:
                return await store.get(conn, kind, normalize_address(subject) if kind == "address" else subject)

    async def address_score(self, address: str) -> dict[str, Any] | None:
        """A payer address's stored score, as ``get`` reads it, reused for a few seconds (the risk stage of every
        verify asks for it; a hot payer costs one query per ``ADDRESS_TTL``, not three round trips per request)."""
        key = normalize_address(address)
        now = time.monotonic()
        hit = self._addresses.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self.get("address", key)
        if len(self._addresses) >= _MAX_CACHED:
            self._addresses.clear()
        self._addresses[key] = (now + self._ttl, found)
        return found

    async def resource_score(self, url: str, method: str) -> int | None:
        """The score of the listed resource at ``url`` (the wallet policy's ``minResourceTrust``)."""
        with system_scope("trust scores: the score of a listed resource by URL"):
            value = await self.pool.fetchval(
                """SELECT t.score FROM resources r JOIN trust_scores t ON t.kind = 'resource' AND t.subject = r.id::text
                   WHERE r.url = $1 AND r.method IN ($2, '') ORDER BY t.score DESC LIMIT 1""",
                url,
                method,
            )
        return None if value is None else int(value)

    def start(self) -> None:
        """Run ``refresh`` every ``interval`` seconds (0 = never; tests call ``refresh``)."""
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="trust-refresh")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("trust_refresh_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Stop the background pass."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
