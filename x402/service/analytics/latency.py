"""Latency percentiles of time-series buckets from the cumulative histograms of migration 0038.

``analytics_latency_day_cdf`` holds, per UTC day and operation, the latency histogram (``x402_latency_bin`` bins)
as one row: the bins present, ascending, and the cumulative count at each; an hour's row is built from its
``analytics_latency_hourly`` rows at read time (an hour bucket reads those rows, as before; keeping hour rows
cumulative cost the fold too much).
A bucket of whole UTC hours is a signed sum of a few such rows: its whole UTC days, and for a partial day either
its hours or the day minus the other hours (whichever reads fewer rows). The bucket's cumulative count at a bin is
the signed sum of the rows' counts there, so its nearest-rank percentile -- the first bin whose running count
reaches ``ceil(p * n)``, the definition the histogram query of the raw path uses -- is found by binary search over
the bins of the bucket's rows. Records not folded yet are added per bucket.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import accumulate

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn = asyncpg.Connection | PoolConnectionProxy

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
OPS = ("verify", "settle")

# per hour and operation the histogram as one row (counts, made cumulative here), per day the stored cumulative row
_ROWS = """SELECT hour AS at, FALSE AS whole, op, array_agg(bin ORDER BY bin) AS bins, array_agg(n ORDER BY bin) AS cum
    FROM analytics_latency_hourly WHERE tenant_id = $1 AND hour = ANY ($2::timestamptz[]) AND n <> 0
    GROUP BY hour, op
    UNION ALL
    SELECT day, TRUE, op, bins, cum FROM analytics_latency_day_cdf
    WHERE tenant_id = $1 AND day = ANY ($3::timestamptz[])"""
_PENDING = """SELECT created_at, CASE WHEN kind = 'settle' THEN 'settle' ELSE 'verify' END AS op,
        x402_latency_bin(latency_ms) AS bin
    FROM analytics_pending
    WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 AND latency_ms IS NOT NULL"""
_BIN_MS = "SELECT b, x402_latency_bin_ms(b) AS ms FROM unnest($1::int[]) AS b"

#: x402_latency_bin_ms of the bins seen so far (an immutable function: the lower edge a percentile reports)
_bin_ms: dict[int, float] = {}

Part = tuple[bool, datetime, int]  # (whole UTC day?, its start, sign)


def _day(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _span(day: datetime, lo: datetime, hi: datetime) -> list[Part]:
    """Rows summing to the hours [lo, hi) of one UTC day: the hours, or the day minus its other hours."""
    n = (hi - lo) // HOUR
    if n == 24:
        return [(True, day, 1)]
    if n <= 25 - n:
        return [(False, lo + i * HOUR, 1) for i in range(n)]
    outside = [day + i * HOUR for i in range(24) if not lo <= day + i * HOUR < hi]
    return [(True, day, 1), *((False, t, -1) for t in outside)]


def parts(a: datetime, b: datetime) -> list[Part]:
    """Signed hour / day rows whose sum is the bucket [a, b) of whole UTC hours."""
    out: list[Part] = []
    t = a
    while t < b:
        day = _day(t)
        end = min(b, day + DAY)
        out += _span(day, t, end)
        t = end
    return out


Cdf = tuple[list[int], list[int]]


def _count_at(cdf: Cdf, b: int) -> int:
    i = bisect_right(cdf[0], b)
    return cdf[1][i - 1] if i else 0


def percentile_bins(terms: list[tuple[int, Cdf]]) -> tuple[int | None, int | None]:
    """Nearest-rank p50 and p95 bins of the signed sum of cumulative histograms (None when it is empty)."""
    total = sum(sign * cdf[1][-1] for sign, cdf in terms if cdf[1])
    if total <= 0:
        return None, None
    if len(terms) == 1:  # one row (an hour or a whole day): its own running counts
        bins, cum = terms[0][1]
        return bins[bisect_left(cum, (total + 1) // 2)], bins[bisect_left(cum, (95 * total + 99) // 100)]
    candidates = sorted({b for sign, cdf in terms if sign > 0 for b in cdf[0]})

    def first(k: int) -> int:
        lo, hi = 0, len(candidates) - 1  # the last candidate's count is the total, >= k
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(sign * _count_at(cdf, candidates[mid]) for sign, cdf in terms) >= k:
                hi = mid
            else:
                lo = mid + 1
        return candidates[lo]

    return first((total + 1) // 2), first((95 * total + 99) // 100)


async def percentiles(
    conn: Conn, tenant: uuid.UUID, bounds: list[tuple[datetime, datetime]]
) -> list[dict[str, tuple[float | None, float | None]]]:
    """Per bucket [a, b) (whole UTC hours, in order, adjacent) and operation: (p50, p95) in milliseconds."""
    plan = [parts(a, b) for a, b in bounds]
    hours = sorted({t for p in plan for whole, t, _ in p if not whole})
    days = sorted({t for p in plan for whole, t, _ in p if whole})
    rows: dict[tuple[bool, datetime, str], Cdf] = {}
    for r in await conn.fetch(_ROWS, tenant, hours, days):
        cum = list(r["cum"]) if r["whole"] else list(accumulate(r["cum"]))
        rows[(r["whole"], r["at"], r["op"])] = (list(r["bins"]), cum)
    pending: list[dict[str, Counter[int]]] = [{op: Counter() for op in OPS} for _ in bounds]
    if bounds:
        starts = [a for a, _ in bounds]
        for r in await conn.fetch(_PENDING, tenant, bounds[0][0], bounds[-1][1]):
            pending[bisect_right(starts, r["created_at"]) - 1][r["op"]][r["bin"]] += 1
    found: list[dict[str, tuple[int | None, int | None]]] = []
    for p, extra in zip(plan, pending, strict=True):
        answer = {}
        for op in OPS:
            terms = [(sign, rows[(whole, t, op)]) for whole, t, sign in p if (whole, t, op) in rows]
            if extra[op]:
                bins = sorted(extra[op])
                cum, run = [], 0
                for b in bins:
                    run += extra[op][b]
                    cum.append(run)
                terms.append((1, (bins, cum)))
            answer[op] = percentile_bins(terms)
        found.append(answer)
    missing = sorted({b for f in found for pair in f.values() for b in pair if b is not None and b not in _bin_ms})
    if missing:
        for r in await conn.fetch(_BIN_MS, missing):
            _bin_ms[r["b"]] = r["ms"]
    return [{op: (_ms(f[op][0]), _ms(f[op][1])) for op in OPS} for f in found]


def _ms(b: int | None) -> float | None:
    return None if b is None else _bin_ms[b]
