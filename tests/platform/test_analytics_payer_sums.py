"""The payer rollups of migration 0037 (per month and lifetime) give the payers and networks breakdowns the
raw records' exact figures: every way a window is split (lifetime minus the rest, a month plus corrections,
days and hours only), folded or pending, with late records, concurrent folds, a second tenant, ties in the order of
the top payers, and after the migration's backfill."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.platform.test_analytics_records import _migrate_to
from tests.platform.test_analytics_rollups import INSERT, START, _fold_all, _records, insert_while_folding, new_tenants
from x402.service.analytics import breakdowns as bd
from x402.service.analytics import payersums
from x402.service.analytics.window import align
from x402.service.storage.db import migrate

HOUR = timedelta(hours=1)
# windows over data from START + 3 days to START + 24 days (2026-03-19 .. 2026-04-09); the comment says how each
# is read when every record is folded
WINDOWS = [
    ("2026-03-10T00:00:00+00:00", "2026-04-20T00:00:00+00:00", "lifetime"),  # all the data: the rest subtracted
    ("2026-03-18T05:00:00+00:00", "2026-04-08T17:00:00+00:00", "none"),  # days and hours (not a month)
    ("2026-03-01T05:00:00+00:00", "2026-03-30T07:00:00+00:00", "month"),  # March, minus / plus edge hours
    ("2026-03-17T07:00:00+00:00", "2026-03-31T15:00:00+00:00", "none"),  # days and hours
    ("2026-03-25T13:00:00+00:00", "2026-03-25T20:00:00+00:00", "none"),  # hours of one day
    ("2026-03-22T11:00:00+00:00", "2026-03-23T13:00:00+00:00", "none"),  # two day edges
]


def _coefficients(total: int, p: payersums.Plan, data: tuple[datetime, datetime]) -> Counter[datetime]:
    """How many times each hour is counted by a plan (the lifetime as every hour of ``data``)."""
    out: Counter[datetime] = Counter()
    if total:
        h = data[0]
        while h < data[1]:
            out[h] += 1
            h += HOUR
    for grain, (starts, signs) in p.parts.items():
        for start, sign in zip(starts, signs, strict=True):
            h, end = start, payersums.after(start, grain)
            while h < end:
                out[h] += sign
                h += HOUR
    return out


def test_every_plan_counts_each_hour_of_the_window_once() -> None:
    rng = random.Random(37)
    base = datetime(2025, 11, 1, tzinfo=UTC)  # across a year's end
    kinds: Counter[int] = Counter()
    for _ in range(400):
        start = base + rng.randrange(24 * 150) * HOUR
        end = start + rng.randrange(1, 24 * rng.choice([2, 20, 120])) * HOUR
        lo = (base + timedelta(days=rng.randrange(120))).replace(day=1)
        hi = payersums.after((lo + timedelta(days=rng.randrange(200))).replace(day=1), "month")
        p = payersums.plan(start, end, (lo, hi))
        kinds[p.total] += 1
        got = _coefficients(p.total, p, (lo, hi))
        want = Counter({start + i * HOUR: 1 for i in range((end - start) // HOUR)})
        # with the lifetime read, hours outside the data's range hold no record and may count anything
        hours = set(got) | set(want)
        if p.total:
            hours = {h for h in hours if lo <= h < hi}
        assert all(got[h] == want[h] for h in hours), (start, end, lo, hi)
        assert payersums.plan(start, end, None).total == 0
    # both kinds of plan were checked
    assert kinds[0] > 50
    assert kinds[1] > 20


async def _same_as_raw(conn: asyncpg.Connection, tenant: uuid.UUID, limit: int = 1000) -> set[str]:
    """payers and networks over WINDOWS: rollups == raw records; returns the kinds of plan the windows used."""
    kinds = set()
    for start, end, _ in WINDOWS:
        window = await align(conn, datetime.fromisoformat(start), datetime.fromisoformat(end), "hour", "UTC")
        for func in (bd.payers, bd.networks):
            assert await func(conn, tenant, window, limit) == await func(conn, tenant, window, limit, raw=True), (
                func.__name__,
                start,
                end,
            )
        big = (await payersums.window_plan(conn, tenant, window.start, window.end)).big()
        kinds.add("none" if big is None else "lifetime" if big[0] is None else "month")
    return kinds


def _ties(tenant: uuid.UUID) -> list[tuple[Any, ...]]:
    """Payers whose figures are equal, named so that code-point and dictionary orders differ."""
    rows: list[tuple[Any, ...]] = []
    for i, payer in enumerate(["0xZed", "0xalpha", "0xBeta", "0xbeta", "0x_mid"]):
        at = START + timedelta(days=6, hours=i)
        rows.append((
            uuid.uuid4(), tenant, "settle", "success", "eip155:84532", "0x808456652fdb597867f38412077A9182bf77359F",
            payer, "0xshop0", 5000, None, None, at, "https://shop.example/r0", "GET", None, 120.0, None, None, None,
        ))  # fmt: skip
    return rows


async def test_payer_sums_equal_the_raw_records_folded_pending_and_late(database_url: str) -> None:
    rng = random.Random(371)
    conn = await asyncpg.connect(database_url)
    try:
        mine, other = await new_tenants(conn)
        await conn.executemany(INSERT, _records(rng, mine, 900, START + timedelta(days=3), 21) + _ties(mine))
        await conn.executemany(INSERT, _records(rng, other, 500, START, 28))  # never in mine's figures
        # nothing folded yet: every figure from the pending records
        await _same_as_raw(conn, mine)
        await _fold_all(conn)
        assert await _same_as_raw(conn, mine) == {"lifetime", "month", "none"}
        for start, end, kind in WINDOWS:  # the plans the windows are listed with
            p = await payersums.window_plan(conn, mine, datetime.fromisoformat(start), datetime.fromisoformat(end))
            big = p.big()
            assert kind == ("none" if big is None else "lifetime" if big[0] is None else "month"), (start, end)
        await _same_as_raw(conn, mine, limit=7)  # a short top list: the order of ties decides who is in it
        # pending only: new payers, records before every folded one, and some in the folded hours
        late = (
            _records(rng, mine, 150, START, 3)
            + _records(rng, mine, 60, START + timedelta(days=10), 5)
            + _records(rng, mine, 40, START + timedelta(days=22), 2)
        )
        await conn.executemany(INSERT, late)
        await _same_as_raw(conn, mine)
        await conn.fetchval("SELECT x402_analytics_fold(90)")  # partly folded
        await _same_as_raw(conn, mine)
        await _fold_all(conn)
        await _same_as_raw(conn, mine, limit=7)
        await _same_as_raw(conn, other)
    finally:
        await conn.close()


async def test_top_payers_candidates_and_the_exact_fallback_agree_with_raw(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top list comes from float candidates ranked exactly; with too many candidates, from the exact query."""
    rng = random.Random(373)
    conn = await asyncpg.connect(database_url)
    try:
        mine, _ = await new_tenants(conn)
        await conn.executemany(INSERT, _records(rng, mine, 600, START + timedelta(days=3), 21) + _ties(mine))
        await _fold_all(conn)
        with monkeypatch.context() as m:  # the candidate path alone: the exact query would fail
            m.setattr(bd, "_PAYERS_EXACT", "SELECT broken")
            await _same_as_raw(conn, mine, limit=7)
            await _same_as_raw(conn, mine, limit=1)
            await _same_as_raw(conn, mine)
        with monkeypatch.context() as m:  # every call falls back to the exact query
            m.setattr(bd, "_too_many", lambda found, want: True)
            await _same_as_raw(conn, mine, limit=7)
            await _same_as_raw(conn, mine)
    finally:
        await conn.close()


async def test_payer_sums_match_the_daily_rollup_after_concurrent_folds(database_url: str) -> None:
    rng = random.Random(372)
    conn = await asyncpg.connect(database_url)
    try:
        mine, other = await new_tenants(conn)
        batches = [_records(rng, mine if i % 3 else other, 70, START, 40) for i in range(12)]
        await insert_while_folding(database_url, conn, INSERT, batches, 40)
        await _same_as_raw(conn, mine)
        await _fold_all(conn)
        await _same_as_raw(conn, mine)
        # each record folded exactly once into every grain: the coarse rows are the daily rows summed
        for table, col, bucket in (
            ("analytics_payers_monthly", "month", "date_trunc('month', day, 'UTC')"),
            ("analytics_payers_total", "NULL::timestamptz", "NULL::timestamptz"),
        ):
            diff = await conn.fetch(
                f"""(SELECT tenant_id, {col} AS b, payer, network, asset, succeeded, failed, volume FROM {table}
                     EXCEPT ALL
                     SELECT tenant_id, {bucket}, payer, network, asset, sum(succeeded), sum(failed), sum(volume)
                     FROM analytics_payers_daily GROUP BY 1, 2, 3, 4, 5)
                    UNION ALL
                    (SELECT tenant_id, {bucket}, payer, network, asset, sum(succeeded), sum(failed), sum(volume)
                     FROM analytics_payers_daily GROUP BY 1, 2, 3, 4, 5
                     EXCEPT ALL
                     SELECT tenant_id, {col}, payer, network, asset, succeeded, failed, volume FROM {table})"""
            )
            assert not diff, (table, diff[:3])
        assert await conn.fetchval("SELECT count(*) FROM analytics_payers_total") > 40
        # the counts of groups with a succeeded payment are the rows' own
        counted = await conn.fetch(
            """SELECT tenant_id, grain, bucket, network, asset, n FROM analytics_payer_asset_counts
               EXCEPT ALL
               SELECT tenant_id, 'month', month, network, asset, count(*) FROM analytics_payers_monthly
               WHERE succeeded > 0 GROUP BY 1, 3, 4, 5"""
        )
        assert {r["grain"] for r in counted} == {"total"}
        assert not await conn.fetch(
            """SELECT tenant_id, network, asset, n FROM analytics_payer_asset_counts WHERE grain = 'total'
               EXCEPT ALL
               SELECT tenant_id, network, asset, count(*) FROM analytics_payers_total WHERE succeeded > 0
               GROUP BY 1, 2, 3"""
        )
        assert await conn.fetchval("SELECT count(*) FROM analytics_payer_asset_counts WHERE n <= 0") == 0
    finally:
        await conn.close()


async def test_migration_backfills_the_payer_sums(empty_database_url: str) -> None:
    rng = random.Random(373)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("SET jit = off")
        await _migrate_to(conn, 37)
        mine, other = uuid.uuid4(), uuid.uuid4()
        for tid in (mine, other):
            await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tid, str(tid))
        await conn.executemany(
            INSERT, _records(rng, mine, 700, START + timedelta(days=3), 21) + _records(rng, other, 200, START, 28)
        )
        await _fold_all(conn)  # migration 0036's fold
        await conn.executemany(INSERT, _records(rng, mine, 80, START, 28))  # still pending at the migration
        assert await conn.fetchval("SELECT to_regclass('analytics_payers_monthly') IS NULL")
        await migrate(conn)
        assert await conn.fetchval("SELECT count(*) FROM analytics_payers_monthly") > 0
        assert await _same_as_raw(conn, mine) == {"lifetime", "month", "none"}
        await _fold_all(conn)  # this migration's fold
        await _same_as_raw(conn, mine)
        await _same_as_raw(conn, other)
    finally:
        await conn.close()
