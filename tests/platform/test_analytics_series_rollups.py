"""The time-series rollups of migration 0038 (cumulative daily latency histograms, payer first / last hours per
UTC day and their counts, daily totals): kept exactly by their triggers whatever the fold does (concurrent folds,
late records, the INSERT and UPDATE halves of one upsert), backfilled by the migration, and giving the raw records'
exact series in whole-hour zones with DST changes inside the window, with records not folded yet."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.platform.test_analytics_records import _migrate_to
from tests.platform.test_analytics_rollups import insert_while_folding, new_tenants
from x402.service.analytics import latency
from x402.service.analytics import timeseries as ts
from x402.service.analytics.window import align
from x402.service.storage.db import migrate

START = datetime(2026, 3, 23, tzinfo=UTC)  # the Berlin / London DST change (03-29) is inside the data
INSERT = """INSERT INTO payments (id, tenant_id, kind, status, network, asset, payer, pay_to, amount, tx, reason,
                                  created_at, resource, method, resource_id, latency_ms, risk, risk_level, risk_flags)
            VALUES ($1, $2, $3, $4, $5, 'eip155:84532', $6, '0xshop', $7, NULL, NULL, $8, 'https://shop.example/r',
                    'GET', NULL, $9, NULL, NULL, NULL)"""
OUTCOMES = [("settle", "success"), ("settle", "success"), ("settle", "failed"), ("verify", "valid"),
            ("verify", "invalid"), ("verify_tx", "verified"), ("settle", "pending")]  # fmt: skip

# day series in whole-hour zones: DST changes of one hour (Berlin, London at offset 0, New York), none (Tokyo,
# +14, -11), the southern hemisphere (Auckland: 04-05), two hours (Antarctica/Troll: a 22-hour day); Kolkata is
# not whole-hour (raw records)
ZONES = ["UTC", "Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati",
         "Pacific/Pago_Pago", "Pacific/Auckland", "Antarctica/Troll", "Asia/Kolkata"]  # fmt: skip


def _records(rng: random.Random, tenant: uuid.UUID, n: int, start: datetime, days: float) -> list[tuple[Any, ...]]:
    """Records clustered around UTC midnights (payers paying on both sides of a day boundary) and spread over the
    day, 30 payers, latencies in the 1 ms and the 2 % bins."""
    rows = []
    for _ in range(n):
        kind, status = rng.choice(OUTCOMES)
        day = rng.randrange(int(days))
        if rng.random() < 0.6:
            at = start + timedelta(days=day, minutes=rng.randrange(-240, 240))
        else:
            at = start + timedelta(days=day, seconds=rng.randrange(86400))
        ms = rng.choice([float(rng.randrange(100)), rng.uniform(100, 3000)])
        payer = rng.choice(["", *(f"0xp{i}" for i in range(30))])
        rows.append((uuid.uuid4(), tenant, kind, status, "eip155:84532", payer, rng.randrange(1, 10**6), at, ms))
    return rows


async def _fold_all(conn: asyncpg.Connection, batch: int = 5000) -> None:
    while await conn.fetchval("SELECT x402_analytics_fold($1)", batch):
        pass


# every payer-day row with the hours (since its period's start) of its first and last payment
PERIOD_HOURS = """WITH src AS (
        SELECT tenant_id, 'day' AS grain, day AS period, payer, first_at, last_at, interval '24 hours' AS len
        FROM analytics_payer_days
    ),
    want AS (SELECT tenant_id, grain, period, payer, len,
                    floor(extract(epoch FROM first_at - period) / 3600)::smallint AS f,
                    floor(extract(epoch FROM last_at - period) / 3600)::smallint AS l FROM src)"""

MISMATCHES = {
    "day cdf": """
        (SELECT tenant_id, day, op, bins, cum FROM analytics_latency_day_cdf
         EXCEPT SELECT tenant_id, day, op, array_agg(bin ORDER BY bin), array_agg(c ORDER BY bin) FROM (
             SELECT *, sum(n) OVER (PARTITION BY tenant_id, day, op ORDER BY bin) AS c FROM analytics_latency_daily
         ) h GROUP BY 1, 2, 3)
        UNION ALL
        (SELECT tenant_id, day, op, array_agg(bin ORDER BY bin), array_agg(c ORDER BY bin) FROM (
             SELECT *, sum(n) OVER (PARTITION BY tenant_id, day, op ORDER BY bin) AS c FROM analytics_latency_daily
         ) h GROUP BY 1, 2, 3
         EXCEPT SELECT tenant_id, day, op, bins, cum FROM analytics_latency_day_cdf)""",
    "payer hours": f"""{PERIOD_HOURS}
        (SELECT tenant_id, grain, period, payer, f, l FROM want
         EXCEPT SELECT tenant_id, grain, period, payer, first_hour, last_hour FROM analytics_payer_period_hours)
        UNION ALL
        (SELECT tenant_id, grain, period, payer, first_hour, last_hour FROM analytics_payer_period_hours
         EXCEPT SELECT tenant_id, grain, period, payer, f, l FROM want)""",
    "edges": f"""{PERIOD_HOURS},
             e AS (SELECT tenant_id, grain, period, 'first' AS edge, f AS hour, count(*) AS n FROM want
                   GROUP BY 1, 2, 3, 4, 5
                   UNION ALL SELECT tenant_id, grain, period, 'last', l, count(*) FROM want GROUP BY 1, 2, 3, 4, 5),
             got AS (SELECT tenant_id, grain, period, edge, hour, n FROM analytics_payer_edges WHERE n <> 0)
        (SELECT * FROM e EXCEPT SELECT * FROM got) UNION ALL (SELECT * FROM got EXCEPT SELECT * FROM e)""",
    "pairs": f"""{PERIOD_HOURS},
             pr AS (SELECT q.tenant_id, q.grain, q.period, p.l, q.f, count(*) AS n
                    FROM want q JOIN want p ON p.payer = q.payer AND p.grain = q.grain
                     AND p.period = q.period - q.len AND p.tenant_id IS NOT DISTINCT FROM q.tenant_id
                    GROUP BY 1, 2, 3, 4, 5),
             got AS (SELECT tenant_id, grain, period, last_hour, first_hour, n FROM analytics_payer_pairs WHERE n <> 0)
        (SELECT * FROM pr EXCEPT SELECT * FROM got) UNION ALL (SELECT * FROM got EXCEPT SELECT * FROM pr)""",
    "daily totals": """
        WITH want AS (SELECT tenant_id, date_trunc('day', hour, 'UTC') AS day, network, asset, sum(total) AS t,
                             sum(succeeded) AS s, sum(failed) AS f, sum(pending) AS p, sum(volume) AS v,
                             sum(pending_volume) AS pv FROM analytics_totals_hourly GROUP BY 1, 2, 3, 4),
             got AS (SELECT tenant_id, day, network, asset, total::numeric, succeeded::numeric, failed::numeric,
                            pending::numeric, volume, pending_volume FROM analytics_totals_daily)
        (SELECT * FROM want EXCEPT SELECT * FROM got) UNION ALL (SELECT * FROM got EXCEPT SELECT * FROM want)""",
}


async def _assert_derived_exact(conn: asyncpg.Connection) -> None:
    """Every 0038 table equals what the rollups it derives from give, recomputed from scratch."""
    for name, sql in MISMATCHES.items():
        assert await conn.fetch(sql) == [], name
    assert await conn.fetchval("SELECT count(*) FROM analytics_payer_pairs WHERE grain = 'day' AND n > 0")


async def _series_same_as_raw(conn: asyncpg.Connection, tenant: uuid.UUID) -> int:
    """Day series in every zone, week and hour series: rollups == raw; how many answers had records."""
    nonempty = 0
    asks = [("day", tz, "2026-03-20T07:13:00+00:00", "2026-04-09T15:40:00+00:00") for tz in ZONES]
    asks += [("week", tz, "2026-03-09T00:00:00+00:00", "2026-04-13T00:00:00+00:00") for tz in ZONES]
    asks += [("hour", tz, "2026-03-28T20:00:00+00:00", "2026-03-30T03:00:00+00:00") for tz in ZONES[:5]]
    for interval, tz, start, end in asks:
        window = await align(conn, datetime.fromisoformat(start), datetime.fromisoformat(end), interval, tz)
        starts = await ts.buckets(conn, window)
        rolled = await ts.series(conn, tenant, window, starts)
        raw = await ts.series(conn, tenant, window, starts, raw=True)
        assert rolled == raw, (interval, tz)
        nonempty += sum(1 for p in raw["points"] if p["uniquePayers"] and p["settleP95Ms"] is not None)
    return nonempty


async def test_series_rollups_stay_exact_through_concurrent_folds_and_late_records(database_url: str) -> None:
    rng = random.Random(38)
    conn = await asyncpg.connect(database_url)
    try:
        mine, other = await new_tenants(conn)
        await conn.executemany(INSERT, _records(rng, mine, 700, START, 14) + _records(rng, other, 200, START, 14))
        await _fold_all(conn, 150)  # many small folds: rows inserted by one, updated by later ones
        await _assert_derived_exact(conn)
        assert await _series_same_as_raw(conn, mine) > 100
        batches = [_records(rng, mine if i % 4 else other, 50, START, 14) for i in range(8)]
        await insert_while_folding(database_url, conn, INSERT, batches, 37)
        # late records, some of them pending: earlier and later hours of days already folded
        await conn.executemany(INSERT, _records(rng, mine, 120, START - timedelta(days=1), 16))
        await conn.fetchval("SELECT x402_analytics_fold(60)")
        assert await conn.fetchval("SELECT count(*) FROM analytics_pending WHERE tenant_id = $1", mine) > 0
        await _series_same_as_raw(conn, mine)
        await _fold_all(conn)
        await _assert_derived_exact(conn)
        await _series_same_as_raw(conn, mine)
        await _series_same_as_raw(conn, other)
    finally:
        await conn.close()


async def test_migration_backfills_the_series_rollups(empty_database_url: str) -> None:
    rng = random.Random(380)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await _migrate_to(conn, 38)
        mine, other = await new_tenants(conn)
        await conn.executemany(INSERT, _records(rng, mine, 500, START, 14) + _records(rng, other, 100, START, 14))
        await _fold_all(conn)
        await conn.executemany(INSERT, _records(rng, mine, 60, START, 14))  # pending at the migration
        assert await conn.fetchval("SELECT to_regclass('analytics_latency_day_cdf') IS NULL")
        await migrate(conn)
        await _assert_derived_exact(conn)
        assert await _series_same_as_raw(conn, mine) > 50
        await _fold_all(conn)
        await _assert_derived_exact(conn)
        await _series_same_as_raw(conn, mine)
    finally:
        await conn.close()


def _brute(bucket: list[int]) -> tuple[int | None, int | None]:
    """Nearest-rank p50 / p95 of a list of bins: the first bin whose running count reaches ceil(p * n)."""
    if not bucket:
        return None, None
    s = sorted(bucket)
    return s[(len(s) + 1) // 2 - 1], s[(95 * len(s) + 99) // 100 - 1]


def _cdf(bins: list[int]) -> tuple[list[int], list[int]]:
    c = Counter(bins)
    keys = sorted(c)
    cum, run = [], 0
    for k in keys:
        run += c[k]
        cum.append(run)
    return keys, cum


@pytest.mark.parametrize("seed", range(40))
def test_percentiles_of_signed_cumulative_rows_equal_the_records(seed: int) -> None:
    rng = random.Random(seed)
    hours = [[rng.choice([rng.randrange(100), rng.randrange(100, 400)]) for _ in range(rng.randrange(0, 12))]
             for _ in range(48)]  # fmt: skip
    day0, t0 = datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 3, 28, tzinfo=UTC)
    a = t0 + timedelta(hours=rng.randrange(0, 24))
    b = a + timedelta(hours=rng.randrange(1, 48 - (a - t0) // timedelta(hours=1) + 1))
    rows = {(False, t0 + timedelta(hours=i)): _cdf(h) for i, h in enumerate(hours) if h}
    rows[(True, t0)] = _cdf([x for h in hours[:24] for x in h])
    rows[(True, day0)] = _cdf([x for h in hours[24:] for x in h])
    terms = [(sign, rows[(whole, t)]) for whole, t, sign in latency.parts(a, b) if (whole, t) in rows]
    first, last = (a - t0) // timedelta(hours=1), (b - t0) // timedelta(hours=1)
    assert latency.percentile_bins(terms) == _brute([x for h in hours[first:last] for x in h])
    # the parts cover the bucket's hours exactly once
    covered: Counter[datetime] = Counter()
    for whole, t, sign in latency.parts(a, b):
        for i in range(24 if whole else 1):
            covered[t + timedelta(hours=i)] += sign
    assert {t for t, n in covered.items() if n} == {a + timedelta(hours=i) for i in range(last - first)}
    assert set(covered.values()) <= {0, 1}
