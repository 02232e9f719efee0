"""The in-process entitlement cache and its cross-process invalidation over Postgres ``LISTEN``/``NOTIFY``.

Every change that moves an answer (usage landing, a customer's plan, a plan or meter edit) sends
``pg_notify('x402_metering', '<tenant>|<customer or *>')`` in its own transaction; each process listens on one
dedicated connection and drops the matching entries, and drops them locally at once for read-your-writes. A TTL
bounds staleness should the listening connection drop (it reconnects; while it is down entries expire quickly).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any, Final

import asyncpg

from x402.logs import get_logger
from x402.service.metering.plans import CHANNEL

log = get_logger("x402.service.metering")

#: Every change that moves an answer is notified, so while the listener is up an entry lives long (a miss costs a
#: usage query: ~10 ms against ~0.1 ms for a hit, bench/entitlements.py); never past its billing period's end.
TTL: Final = 600.0
#: Without a live listener (another process's change would go unseen) entries last this long.
UNLISTENED_TTL: Final = 1.0
#: Bound on cached answers per process; when full, expired entries go first, then the oldest.
MAX_ENTRIES: Final = 100_000


class EntitlementCache:
    """Answers by (tenant, customer), evicted by notification or TTL."""

    def __init__(self, database_url: str | None) -> None:
        self._url = database_url
        self._entries: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self._lost = asyncio.Event()

    def get(self, tenant: str, customer: str) -> dict[str, Any] | None:
        """A fresh cached answer, if any."""
        hit = self._entries.get((tenant, customer))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, tenant: str, customer: str, answer: dict[str, Any]) -> None:
        """Remember an answer."""
        ttl = TTL if self.listening.is_set() else UNLISTENED_TTL
        period = answer.get("period")
        if isinstance(period, dict) and isinstance(period.get("end"), str):
            end = datetime.fromisoformat(period["end"].replace("Z", "+00:00"))
            ttl = max(0.0, min(ttl, end.timestamp() - time.time()))  # a new month starts from zero usage
        entries, now = self._entries, time.monotonic()
        if len(entries) >= MAX_ENTRIES and (tenant, customer) not in entries:
            for key in [k for k, (until, _) in entries.items() if until < now]:
                del entries[key]
            while len(entries) >= MAX_ENTRIES:
                del entries[next(iter(entries))]
        entries[(tenant, customer)] = (now + ttl, answer)

    def evict(self, payload: str) -> None:
        """Drop what ``<tenant>|<customer>`` (``*``: every customer of the tenant) names."""
        tenant, _, customer = payload.partition("|")
        if customer == "*":
            for key in [k for k in self._entries if k[0] == tenant]:
                self._entries.pop(key, None)
        else:
            self._entries.pop((tenant, customer), None)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object, /) -> None:
        self.evict(str(payload))

    def _on_lost(self, _conn: Any) -> None:
        self._lost.set()
        self.listening.clear()
        self._entries.clear()

    async def _listen(self) -> None:
        assert self._url is not None
        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self._url)
                self._lost = asyncio.Event()
                conn.add_termination_listener(self._on_lost)
                await conn.add_listener(CHANNEL, self._on_notify)
                self._conn = conn
                self._entries.clear()  # whatever changed while nobody listened
                self.listening.set()
                delay = 0.5
                await self._lost.wait()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("metering_listener_down", error=type(exc).__name__)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def start(self) -> None:
        """Start listening (no database URL: in-process only)."""
        if self._url:
            self._task = asyncio.create_task(self._listen(), name="metering-listener")

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
