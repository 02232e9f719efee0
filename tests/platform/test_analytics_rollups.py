"""The coarse rollups of migration 0036 give the raw records' exact figures: every endpoint's rollup read equals the
same function computed from ``payments`` (``raw=True``), folded or pending, with late records, concurrent folds,
a second tenant's records, and after the migration's backfill."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.platform.test_analytics_records import _migrate_to
from x402.service.analytics import breakdowns as bd
from x402.service.analytics import timeseries as ts
from x402.service.analytics.window import align
from x402.service.storage.db import migrate

START = datetime(2026, 3, 16, tzinfo=UTC)  # a Monday; the data covers four weeks around the Berlin DST change
ASSETS = [
    ("eip155:8453", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
    ("eip155:84532", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
    ("eip155:84532", "0x808456652fdb597867f38412077A9182bf77359F"),
]
OUTCOMES = [
    ("settle", "success", None),
    ("settle", "success", None),
    ("settle", "failed", "insufficient_funds"),
    ("settle", "pending", "settlement_pending"),
    ("verify", "valid", None),
    ("verify", "invalid", "invalid_signature"),
    ("verify_tx", "verified", None),
]
INSERT = """INSERT INTO payments (id, tenant_id, kind, status, network, asset, payer, pay_to, amount, tx, reason,
                                  created_at, resource, method, resource_id, latency_ms, risk, risk_level, risk_flags)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"""


def _records(rng: random.Random, tenant: uuid.UUID, n: int, start: datetime, days: float) -> list[tuple[Any, ...]]:
    rows = []
    for _ in range(n):
        kind, status, reason = rng.choice(OUTCOMES)
        network, asset = rng.choice(ASSETS)
        res = rng.randrange(6)
        at = start + timedelta(seconds=rng.randrange(int(days * 86400)))
        ms = rng.choice([rng.uniform(0, 99), rng.uniform(100, 5000)])
        risk = rng.choice([None, "accept", "block"]) if kind == "verify" else None
        rows.append((
            uuid.uuid4(), tenant, kind, status, network, asset, rng.choice(["", f"0xp{rng.randrange(40)}"]),
            f"0xshop{res % 3}", rng.randrange(1, 10**7), None, reason, at, f"https://shop.example/r{res}",
            "GET" if res % 2 else "POST", None, ms, risk, "low" if risk else None,
            rng.choice(["", "new_payer", "new_payer,velocity"]) if risk else None,
        ))  # fmt: skip
    return rows


SERIES = [
    ("hour", "UTC", "2026-03-28T05:00:00+00:00", "2026-03-30T17:00:00+00:00"),
    ("hour", "Europe/Berlin", "2026-03-28T20:00:00+00:00", "2026-03-29T06:00:00+00:00"),
    ("day", "UTC", "2026-03-17T07:13:00+00:00", "2026-04-08T15:40:00+00:00"),
    ("day", "Europe/Berlin", "2026-03-17T07:13:00+00:00", "2026-04-08T15:40:00+00:00"),
    ("day", "America/New_York", "2026-03-17T07:13:00+00:00", "2026-04-08T15:40:00+00:00"),
    ("day", "Asia/Tokyo", "2026-03-17T07:13:00+00:00", "2026-04-08T15:40:00+00:00"),
    ("day", "Asia/Kolkata", "2026-03-20T00:00:00+00:00", "2026-03-25T00:00:00+00:00"),  # raw path
    ("week", "UTC", "2026-03-10T00:00:00+00:00", "2026-04-20T00:00:00+00:00"),
    ("week", "Europe/Berlin", "2026-03-10T00:00:00+00:00", "2026-04-20T00:00:00+00:00"),
    ("week", "America/Los_Angeles", "2026-03-10T00:00:00+00:00", "2026-04-20T00:00:00+00:00"),
]
BREAKDOWN_WINDOWS = [
    ("2026-03-17T07:13:00+00:00", "2026-04-08T15:40:00+00:00"),
    ("2026-03-25T13:00:00+00:00", "2026-03-25T20:00:00+00:00"),  # inside one day
    ("2026-03-22T11:00:00+00:00", "2026-03-23T13:00:00+00:00"),  # two day edges, no whole day
    ("2026-03-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),  # whole days only
]
BREAKDOWNS = (bd.resources, bd.networks, bd.payers, bd.failures, bd.risk, bd.payouts, bd.cohorts)


async def _same_as_raw(conn: asyncpg.Connection, tenant: uuid.UUID) -> int:
    """Every endpoint over several windows and zones: rollups == raw; returns how many answers had records."""
    nonempty = 0
    for interval, tz, start, end in SERIES:
        window = await align(conn, datetime.fromisoformat(start), datetime.fromisoformat(end), interval, tz)
        starts = await ts.buckets(conn, window)
        rolled = await ts.series(conn, tenant, window, starts)
        raw = await ts.series(conn, tenant, window, starts, raw=True)
        assert rolled == raw, (interval, tz)
        nonempty += any(p["count"] for p in raw["points"])
    for start, end in BREAKDOWN_WINDOWS:
        for func in BREAKDOWNS:
            unit = "week" if func is bd.cohorts else "hour"
            window = await align(conn, datetime.fromisoformat(start), datetime.fromisoformat(end), unit, "UTC")
            answer = await func(conn, tenant, window, 1000)
            from_raw = await func(conn, tenant, window, 1000, raw=True)
            assert answer == from_raw, (func.__name__, start, end)
            nonempty += bool(from_raw[1])
    return nonempty


async def _fold_all(conn: asyncpg.Connection, batch: int = 5000) -> None:
    while await conn.fetchval("SELECT x402_analytics_fold($1)", batch):
        pass


async def insert_while_folding(
    database_url: str, conn: asyncpg.Connection, insert: str, batches: list[list[tuple[Any, ...]]], fold_batch: int
) -> None:
    """Insert ``batches`` one after another (``insert``) while 3 other connections fold batches of ``fold_batch``
    (as several service processes do)."""
    folders = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        stop = asyncio.Event()

        async def fold(c: asyncpg.Connection) -> None:
            while not stop.is_set():
                if not await c.fetchval("SELECT x402_analytics_fold($1)", fold_batch):
                    await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(fold(c)) for c in folders]
        for rows in batches:
            await conn.executemany(insert, rows)
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for c in folders:
            await c.close()


async def new_tenants(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """Two new tenants (and JIT off on ``conn``: the exactness queries run in milliseconds)."""
    await conn.execute("SET jit = off")
    mine, other = uuid.uuid4(), uuid.uuid4()
    for tid in (mine, other):
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tid, str(tid))
    return mine, other


async def _two_tenants(conn: asyncpg.Connection, rng: random.Random) -> tuple[uuid.UUID, uuid.UUID]:
    """Two tenants' records over four weeks, folded."""
    mine, other = await new_tenants(conn)
    await conn.executemany(INSERT, _records(rng, mine, 800, START + timedelta(days=3), 21))
    await conn.executemany(INSERT, _records(rng, other, 800, START, 28))  # never in mine's figures
    await _fold_all(conn)
    return mine, other


async def test_rollups_equal_the_raw_records_folded_pending_and_late(database_url: str) -> None:
    rng = random.Random(16)
    conn = await asyncpg.connect(database_url)
    try:
        mine, _ = await _two_tenants(conn, rng)
        assert await _same_as_raw(conn, mine) > 20
        # pending only: new payers, and records earlier than every folded one (a payer's cohort moves back)
        late = _records(rng, mine, 150, START, 3) + _records(rng, mine, 50, START + timedelta(days=10), 5)
        await conn.executemany(INSERT, late)
        assert await conn.fetchval("SELECT count(*) FROM analytics_pending WHERE tenant_id = $1", mine) == 200
        await _same_as_raw(conn, mine)
        await conn.fetchval("SELECT x402_analytics_fold(80)")  # partly folded
        await _same_as_raw(conn, mine)
    finally:
        await conn.close()


async def test_rollups_stay_exact_with_records_arriving_while_folders_run(database_url: str) -> None:
    rng = random.Random(17)
    conn = await asyncpg.connect(database_url)
    try:
        mine, other = await _two_tenants(conn, rng)
        batches = [_records(rng, mine if i % 3 else other, 60, START, 28) for i in range(10)]
        await insert_while_folding(database_url, conn, INSERT, batches, 40)
        await _same_as_raw(conn, mine)
        await _fold_all(conn)
        await _same_as_raw(conn, other)
        # each set's size is the set's rows; the cohorts hold every payer-week once
        assert not await conn.fetch(
            """SELECT c.grain, c.bucket FROM analytics_payer_counts c WHERE c.n <> CASE c.grain
                 WHEN 'hour' THEN (SELECT count(*) FROM analytics_payer_hours s WHERE s.tenant_id = c.tenant_id
                                     AND s.hour = c.bucket)
                 WHEN 'day' THEN (SELECT count(*) FROM analytics_payer_days s WHERE s.tenant_id = c.tenant_id
                                    AND s.day = c.bucket)
                 ELSE (SELECT count(*) FROM analytics_payer_weeks s WHERE s.tenant_id = c.tenant_id
                         AND s.week = c.bucket) END"""
        )
        assert await conn.fetchval("SELECT sum(n) FROM analytics_cohorts") == await conn.fetchval(
            "SELECT count(*) FROM analytics_payer_weeks"
        )
    finally:
        await conn.close()


async def test_migration_backfills_the_coarse_rollups(empty_database_url: str) -> None:
    rng = random.Random(36)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("SET jit = off")
        await _migrate_to(conn, 36)
        mine, other = uuid.uuid4(), uuid.uuid4()
        for tid in (mine, other):
            await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tid, str(tid))
        await conn.executemany(INSERT, _records(rng, mine, 600, START, 28) + _records(rng, other, 200, START, 28))
        await _fold_all(conn)  # migration 0021's fold
        await conn.executemany(INSERT, _records(rng, mine, 80, START, 28))  # still pending at the migration
        assert await conn.fetchval("SELECT to_regclass('analytics_daily') IS NULL")
        await migrate(conn)
        assert await conn.fetchval("SELECT count(*) FROM analytics_daily") > 0
        assert await _same_as_raw(conn, mine) > 20
        await _fold_all(conn)
        await _same_as_raw(conn, mine)
    finally:
        await conn.close()
