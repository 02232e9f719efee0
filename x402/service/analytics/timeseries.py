"""``GET /v1/analytics/timeseries``: gap-filled buckets of counts, volume, unique payers and latency percentiles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.service.analytics.latency import percentiles
from x402.service.analytics.money import usd, volume_json
from x402.service.analytics.sources import source, split_source
from x402.service.analytics.uniques import Unsplittable, unique_payers
from x402.service.analytics.window import INTERVALS, Window, local_iso, whole_hours

Conn = asyncpg.Connection | PoolConnectionProxy

# every bucket of the window: local calendar steps for day / week (a DST day is 23 or 25 hours), UTC hours for hour
_BUCKETS_LOCAL = """SELECT bucket, x402_utc_offset(bucket, $3) AS off FROM (SELECT (g AT TIME ZONE $3) AS bucket
    FROM generate_series(($1::timestamptz AT TIME ZONE $3), ($2::timestamptz AT TIME ZONE $3) - $4::interval,
                         $4::interval) g) b"""
_BUCKETS_HOURS = """SELECT bucket, x402_utc_offset(bucket, $3) AS off
    FROM generate_series($1::timestamptz, $2::timestamptz - $4::interval, $4::interval) AS bucket"""


def _queries(raw: bool, split: bool = False) -> dict[str, str]:
    """The queries of one source: the raw records, the hourly rollups (hour buckets), or ``split``: whole UTC days
    from the daily twin corrected by the hours where the zone's buckets differ (day and week buckets)."""
    b = "date_trunc($5, hour, $4)"
    totals = (
        split_source("analytics_totals_hourly", "date_trunc($5, {t}, $4)")
        if split
        else source("analytics_totals_hourly", raw=raw)
    )
    payers = source("analytics_payers_hourly", raw=raw)
    latency = source("analytics_latency_hourly", raw=raw)
    return {
        # counts and volume per bucket, network and asset (a split group may sum to zero: volume drops those)
        "totals": f"""SELECT {b} AS bucket, network, asset, sum(total) AS total, sum(succeeded) AS succeeded,
                sum(failed) AS failed, sum(volume) AS amount
            FROM {totals} GROUP BY 1, 2, 3""",
        "payers": f"""SELECT {b} AS bucket, count(DISTINCT payer) AS n FROM {payers} WHERE succeeded > 0 GROUP BY 1""",
        # nearest-rank percentiles over the latency histogram: the first bin whose running count reaches p * n
        # (the rollup paths find the same bins from the cumulative rows of migration 0038: latency.py)
        "latency": f"""SELECT bucket, op,
                x402_latency_bin_ms(min(bin) FILTER (WHERE cum >= ceil(0.5 * tot))) AS p50,
                x402_latency_bin_ms(min(bin) FILTER (WHERE cum >= ceil(0.95 * tot))) AS p95
            FROM (SELECT bucket, op, bin, sum(n) OVER (PARTITION BY bucket, op ORDER BY bin) AS cum,
                         sum(n) OVER (PARTITION BY bucket, op) AS tot
                  FROM (SELECT {b} AS bucket, op, bin, sum(n) AS n FROM {latency} GROUP BY 1, 2, 3
                        HAVING sum(n) > 0) h) c
            GROUP BY 1, 2""",
    }


ROLLUP_QUERIES = _queries(raw=False)
SPLIT_QUERIES = _queries(raw=False, split=True)
RAW_QUERIES = _queries(raw=True)


async def buckets(conn: Conn, window: Window) -> list[tuple[datetime, int]]:
    """The start of every bucket in the window, in order, with the zone's UTC offset (seconds) there."""
    sql = _BUCKETS_HOURS if window.interval == "hour" else _BUCKETS_LOCAL
    rows = await conn.fetch(sql, window.start, window.end, window.tz, INTERVALS[window.interval])
    return [(r["bucket"], r["off"]) for r in rows]


async def series(
    conn: Conn, tenant: uuid.UUID, window: Window, starts: list[tuple[datetime, int]], *, raw: bool | None = None
) -> dict[str, Any]:
    """The answer body; reads the rollups unless a bucket boundary is not on a whole UTC hour (or ``raw``): counts
    and volume from ``analytics_totals_hourly`` (hour buckets) or ``analytics_totals_daily`` corrected by the hours
    where the buckets differ from UTC days, unique payers from the payer sets and hour counts (``uniques``), latency
    percentiles from the cumulative day rows and the hours of ``analytics_latency_hourly`` (``latency``).

    ``raw`` set: the same figures from the raw payment records (the benchmark's baseline)."""
    if raw is None:
        raw = not whole_hours(window, [off for _, off in starts])
    queries = RAW_QUERIES if raw else ROLLUP_QUERIES if window.interval == "hour" else SPLIT_QUERIES
    args = (tenant, window.start, window.end, window.tz, window.interval)
    points: dict[datetime, dict[str, Any]] = {
        s: {"count": 0, "succeeded": 0, "failed": 0, "uniquePayers": 0, "volume": [], "off": off} for s, off in starts
    }
    for r in await conn.fetch(queries["totals"], *args):
        p = points.get(r["bucket"])
        if p is not None:
            p["count"] += int(r["total"])
            p["succeeded"] += int(r["succeeded"])
            p["failed"] += int(r["failed"])
            if r["amount"] > 0:
                p["volume"].append((r["network"], r["asset"], int(r["amount"])))
    try:
        if raw:
            raise Unsplittable("raw")
        for (_, p), n in zip(points.items(), await unique_payers(conn, tenant, window, list(points)), strict=True):
            p["uniquePayers"] = n
    except Unsplittable:
        for r in await conn.fetch(queries["payers"], *args):
            if r["bucket"] in points:
                points[r["bucket"]]["uniquePayers"] = int(r["n"])
    latency: dict[tuple[datetime, str], tuple[float | None, float | None]] = {}
    if raw:
        for r in await conn.fetch(queries["latency"], *args):
            latency[(r["bucket"], r["op"])] = (r["p50"], r["p95"])
    else:
        bounds = list(zip(points, [*list(points)[1:], window.end], strict=True))
        for (a, _), found in zip(bounds, await percentiles(conn, tenant, bounds), strict=True):
            for op, pair in found.items():
                latency[(a, op)] = pair
    out = []
    for start, p in points.items():
        vp50, vp95 = latency.get((start, "verify"), (None, None))
        sp50, sp95 = latency.get((start, "settle"), (None, None))
        out.append(
            {
                "bucket": local_iso(start, p["off"]),
                "count": p["count"],
                "succeeded": p["succeeded"],
                "failed": p["failed"],
                "uniquePayers": p["uniquePayers"],
                "volume": volume_json(p["volume"]),
                "usd": usd(p["volume"]),
                "verifyP50Ms": vp50,
                "verifyP95Ms": vp95,
                "settleP50Ms": sp50,
                "settleP95Ms": sp95,
            }
        )
    return {
        "interval": window.interval,
        "tz": window.tz,
        "from": local_iso(window.start, window.start_offset),
        "to": local_iso(window.end, window.end_offset),
        "points": out,
    }
