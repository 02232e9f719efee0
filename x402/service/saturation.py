"""Saturation signals on ``/metrics``: how close each shared resource is to its limit.

Scrape-time (read live, no work on the hot path): the DB pool in use / idle / waiting, the payment-record writer's
backlog, each RPC endpoint's circuit breaker. Sampled every ``X402_SATURATION_INTERVAL`` seconds by one background
task (queries and RPC calls that must not run per scrape): pending settlements and the reconciler's backlog, the
webhook delivery queue and the event outbox, each signer's gas balance and nonce lag. Event-loop lag is measured by
a ticker that notes how late its wake-ups are; the number of live asyncio tasks is read at scrape time (a count that
keeps growing under steady traffic is a task leak).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chains.base import GasBalance, NonceLanes, RpcHealth
from chains.registry import ChainRegistry
from x402.logs import get_logger
from x402.service.appkeys import CHAINS, DB, METRICS, PLATFORM, SETTINGS
from x402.service.storage.scope import system_scope

log = get_logger("x402.service.saturation")

BREAKER_STATES = ("closed", "half-open", "open")
LAG_TICK = 0.25

_SETTLEMENTS_SQL = """
SELECT network, count(*) AS open,
       count(*) FILTER (WHERE updated_at < now() - make_interval(secs => $1)) AS backlog
FROM settlements WHERE status IN ('claimed', 'submitted', 'pending') GROUP BY network
"""
_WEBHOOKS_SQL = """
SELECT count(*) AS depth, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age
FROM webhook_deliveries WHERE status = 'pending'
"""
_OUTBOX_SQL = """
SELECT count(*) AS depth, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age
FROM provider_events WHERE NOT dispatched
"""


@dataclass
class Sampled:
    """The last background sample (scrapes read it; the sampler replaces its fields)."""

    settlements_open: dict[str, int] = field(default_factory=dict)
    reconciler_backlog: dict[str, int] = field(default_factory=dict)
    webhook_depth: float = 0.0
    webhook_age: float = 0.0
    outbox_depth: float = 0.0
    outbox_age: float = 0.0
    signer_balance: dict[tuple[str, str], int] = field(default_factory=dict)
    nonce_lag: dict[tuple[str, str], int] = field(default_factory=dict)
    loop_lag: float = 0.0
    loop_lag_window: float = 0.0
    sampled_at: float = 0.0


class SaturationCollector(Collector):
    """Yields the saturation families for one app."""

    def __init__(self, app: web.Application, sampled: Sampled) -> None:
        self.app = app
        self.sampled = sampled

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Every family, always present (zero when the part is absent), so dashboards and alerts see them."""
        yield from self._pool()
        yield from self._writer()
        yield from self._breakers()
        yield from self._sampled()
        yield from self._tasks()

    def _pool(self) -> Iterator[GaugeMetricFamily]:
        conns = GaugeMetricFamily("x402_db_pool_connections", "DB pool connections by state", labels=["state"])
        waiting = GaugeMetricFamily("x402_db_pool_waiting", "Callers waiting for a DB pool connection")
        pool: asyncpg.Pool | None = self.app.get(DB)
        size = idle = maxsize = waiters = 0
        if pool is not None:
            size, idle, maxsize = pool.get_size(), pool.get_idle_size(), pool.get_max_size()
            queue: Any = getattr(pool, "_queue", None)  # asyncpg keeps no public waiter count
            waiters = len(getattr(queue, "_getters", ()) or ())
        conns.add_metric(["in_use"], size - idle)
        conns.add_metric(["idle"], idle)
        conns.add_metric(["max"], maxsize)
        waiting.add_metric([], waiters)
        yield conns
        yield waiting

    def _writer(self) -> Iterator[GaugeMetricFamily]:
        platform = self.app.get(PLATFORM)
        depth, age = platform.writer.backlog() if platform is not None else (0, 0.0)
        yield GaugeMetricFamily("x402_record_queue_depth", "Payment records queued, not yet committed", value=depth)
        yield GaugeMetricFamily("x402_record_queue_age_seconds", "Age of the oldest uncommitted record", value=age)

    def _breakers(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "x402_rpc_breaker_state",
            "RPC endpoint circuit breaker: 1 for its current state",
            labels=["network", "endpoint", "state"],
        )
        opened = GaugeMetricFamily(
            "x402_rpc_breaker_open", "1 when an RPC endpoint's breaker is open", labels=["network", "endpoint"]
        )
        chains: ChainRegistry | None = self.app.get(CHAINS)
        for adapter in chains or ():
            if not isinstance(adapter, RpcHealth):
                continue
            for network, endpoint, state in adapter.rpc_endpoints():
                for s in BREAKER_STATES:
                    fam.add_metric([network, endpoint, s], 1.0 if s == state else 0.0)
                opened.add_metric([network, endpoint], 1.0 if state == "open" else 0.0)
        yield fam
        yield opened

    def _tasks(self) -> Iterator[GaugeMetricFamily]:
        try:
            live = len(asyncio.all_tasks())  # /metrics renders on the app's event loop
        except RuntimeError:  # rendered off the loop (no running loop): nothing to count
            live = 0
        yield GaugeMetricFamily("x402_asyncio_tasks", "Live asyncio tasks on this process's event loop", value=live)

    def _sampled(self) -> Iterator[GaugeMetricFamily]:
        s = self.sampled
        pending = GaugeMetricFamily(
            "x402_settlements_pending", "Open settlements (claimed, submitted or pending)", labels=["network"]
        )
        backlog = GaugeMetricFamily(
            "x402_reconciler_backlog",
            "Open settlements not touched for longer than the reconcile interval",
            labels=["network"],
        )
        chains: ChainRegistry | None = self.app.get(CHAINS)
        served = [n for n in (chains.networks() if chains is not None else ()) if "*" not in n]
        for net in sorted({*served, *s.settlements_open}):  # zero for a served network with nothing open
            pending.add_metric([net], s.settlements_open.get(net, 0))
            backlog.add_metric([net], s.reconciler_backlog.get(net, 0))
        yield pending
        yield backlog
        yield GaugeMetricFamily("x402_webhook_queue_depth", "Webhook deliveries waiting", value=s.webhook_depth)
        yield GaugeMetricFamily(
            "x402_webhook_queue_age_seconds", "Age of the oldest waiting webhook delivery", value=s.webhook_age
        )
        yield GaugeMetricFamily("x402_event_outbox_depth", "Provider events not yet dispatched", value=s.outbox_depth)
        yield GaugeMetricFamily(
            "x402_event_outbox_age_seconds", "Age of the oldest undispatched provider event", value=s.outbox_age
        )
        balance = GaugeMetricFamily(
            "x402_signer_balance", "Facilitator signer gas balance (atomic units)", labels=["network", "signer"]
        )
        for (net, signer), v in s.signer_balance.items():
            balance.add_metric([net, signer], v)
        yield balance
        lag = GaugeMetricFamily(
            "x402_signer_nonce_lag", "Signer nonces pending on chain but not mined", labels=["network", "signer"]
        )
        for (net, signer), v in s.nonce_lag.items():
            lag.add_metric([net, signer], v)
        yield lag
        yield GaugeMetricFamily(
            "x402_event_loop_lag_seconds", "Worst event-loop wake-up delay over the last interval", value=s.loop_lag
        )
        age = time.monotonic() - s.sampled_at if s.sampled_at else -1.0
        yield GaugeMetricFamily(
            "x402_saturation_sample_age_seconds", "Seconds since the last background sample (-1: none yet)", value=age
        )


async def _sample_db(pool: asyncpg.Pool, s: Sampled, reconcile_interval: float) -> None:
    with system_scope("saturation metrics: queue depths across every tenant"):
        async with pool.acquire() as conn:
            rows = await conn.fetch(_SETTLEMENTS_SQL, float(reconcile_interval))
            s.settlements_open = {r["network"]: int(r["open"]) for r in rows}
            s.reconciler_backlog = {r["network"]: int(r["backlog"]) for r in rows}
            for sql, prefix in ((_WEBHOOKS_SQL, "webhook"), (_OUTBOX_SQL, "outbox")):
                try:
                    row = await conn.fetchrow(sql)
                except asyncpg.UndefinedTableError:
                    continue
                if row is not None:
                    setattr(s, f"{prefix}_depth", float(row["depth"]))
                    setattr(s, f"{prefix}_age", float(row["age"]))


async def _sample_signers(chains: ChainRegistry, s: Sampled) -> None:
    balances: dict[tuple[str, str], int] = {}
    lags: dict[tuple[str, str], int] = {}
    for adapter in chains:
        signers = [a for addrs in adapter.signers().values() for a in addrs]
        for network in adapter.networks():
            if "*" in network:
                continue
            for signer in signers:
                with contextlib.suppress(Exception):  # a dead RPC shows in the breaker family, not here
                    if isinstance(adapter, GasBalance):
                        balances[(network, signer)] = await adapter.gas_balance(network, signer)
                    if isinstance(adapter, NonceLanes):
                        lane = await adapter.lane_state(network, signer)
                        lags[(network, signer)] = max(0, lane.pending - lane.mined)
    s.signer_balance, s.nonce_lag = balances, lags


async def _sampler(app: web.Application, s: Sampled, interval: float) -> None:
    settings = app[SETTINGS]
    while True:
        await asyncio.sleep(interval)  # first sample after one interval: start-up and short-lived apps stay quiet
        try:
            await _sample_db(app[DB], s, settings.reconcile_interval)
            await _sample_signers(app[CHAINS], s)
            s.sampled_at = time.monotonic()
        except Exception as exc:  # a sample that failed keeps the last values; the age gauge shows it
            log.warning("saturation_sample_failed", error=type(exc).__name__)


async def _lag_ticker(s: Sampled, interval: float) -> None:
    loop = asyncio.get_running_loop()
    worst, window_start = 0.0, loop.time()
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_TICK)
        now = loop.time()
        worst = max(worst, now - before - LAG_TICK)
        if now - window_start >= interval:
            s.loop_lag, worst, window_start = worst, 0.0, now


async def saturation_ctx(app: web.Application) -> AsyncIterator[None]:
    """Register the collector on the app's registry and run the sampler and the lag ticker."""
    settings = app[SETTINGS]
    sampled = Sampled()
    app[METRICS].registry.register(SaturationCollector(app, sampled))
    tasks = [
        asyncio.create_task(_sampler(app, sampled, settings.saturation_interval), name="saturation-sampler"),
        asyncio.create_task(_lag_ticker(sampled, settings.saturation_interval), name="loop-lag"),
    ]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def install(app: web.Application) -> None:
    """Mount the saturation signals (after the database, chains and platform contexts)."""
    app.cleanup_ctx.append(saturation_ctx)
