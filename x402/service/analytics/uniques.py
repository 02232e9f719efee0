"""Exact unique payers per time-series bucket from the payer sets of migration 0036, without reading the sets.

A bucket [a, b) of whole UTC hours (a local hour, day or ISO week in a zone with whole-hour offsets) lies in at
most two UTC periods of its grain (hour, day, week): a suffix [a, Q) of the period P holding ``a`` and a prefix
[Q, b) of the next one. A payer paid in the suffix when its last payment in P is at or after ``a``, in the prefix
when its first payment in Q is before ``b`` (``analytics_payer_days`` / ``analytics_payer_weeks`` keep both), so

    unique(a, b) = |suffix of P| + |prefix of Q| - |payers in both|

where a whole period's size is ``analytics_payer_counts`` and a part is counted from the side with fewer hours
(the rest is the size minus the other side), through the (period, first_at) / (period, last_at) indexes: only the
payers of the hours next to the cut are read. Records not folded yet are added when their payer is not in the
bucket already.

Day buckets (a local day in a whole-hour zone, DST days included) use the hour counts of migration 0038 instead,
so no payer is read at all: with P the UTC day holding the bucket's start at hour ``a`` of P and Q the next one,
where it ends at hour ``b`` of Q (``b`` = 24: Q is whole),

    unique = |payers of P whose last payment is at hour >= a| + |payers of Q whose first is at hour < b|
             - |payers of both whose last in P is at hour >= a and first in Q at hour < b|

the first two from ``analytics_payer_edges`` (at most one row per hour), the third from ``analytics_payer_pairs``
(counts by (last hour in P, first hour in Q), read through the index on whichever hour range is shorter); a whole
day is its set size. (The tables take a grain; only days are kept: week buckets are few, and keeping weeks cost the
fold more than their reads save.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.service.analytics.window import Window

Conn = asyncpg.Connection | PoolConnectionProxy

#: grain -> (set table, its period column, period length)
SETS = {
    "hour": ("analytics_payer_hours", "hour", timedelta(hours=1)),
    "day": ("analytics_payer_days", "day", timedelta(days=1)),
    "week": ("analytics_payer_weeks", "week", timedelta(weeks=1)),
}


class Unsplittable(Exception):
    """A bucket cuts one period at both ends (not possible with whole-hour offsets and one-hour DST shifts)."""


def period_start(moment: datetime, grain: str) -> datetime:
    """The UTC hour, day or ISO week (from Monday) holding ``moment`` (an aware datetime)."""
    t = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if grain == "hour":
        return t
    t = t - timedelta(hours=t.hour)
    return t if grain == "day" else t - timedelta(days=t.weekday())


Term = tuple[int, str, datetime, datetime | None, datetime | None, datetime | None, int]


def terms(bounds: list[tuple[datetime, datetime]], grain: str) -> list[Term]:
    """(bucket index, kind, P, x, Q, y, coefficient) rows whose weighted counts sum to each bucket's payers."""
    size = SETS[grain][2]
    out: list[Term] = []
    for i, (a, b) in enumerate(bounds):
        p = period_start(a, grain)
        q = p + size
        if b > q + size or (a > p and b < q):
            raise Unsplittable(f"[{a}, {b}) in {grain} periods")
        if b <= q:  # inside P: whole, or a prefix [p, b)
            if b == q:
                out.append((i, "all", p, None, None, None, 1))
            elif b - p <= q - b:
                out.append((i, "first_lt", p, b, None, None, 1))
            else:
                out += [(i, "all", p, None, None, None, 1), (i, "first_ge", p, b, None, None, -1)]
            continue
        # suffix [a, q) of P
        if a == p:
            out.append((i, "all", p, None, None, None, 1))
        elif q - a <= a - p:
            out.append((i, "last_ge", p, a, None, None, 1))
        else:
            out += [(i, "all", p, None, None, None, 1), (i, "last_lt", p, a, None, None, -1)]
        # prefix [q, b) of Q
        qq = q + size
        if b == qq:
            out.append((i, "all", q, None, None, None, 1))
        elif b - q <= qq - b:
            out.append((i, "first_lt", q, b, None, None, 1))
        else:
            out += [(i, "all", q, None, None, None, 1), (i, "first_ge", q, b, None, None, -1)]
        # minus the payers in both parts, found from the shorter one
        out.append((i, "both_p" if q - a <= b - q else "both_q", p, a, q, b, -1))
    return out


def _terms_sql(grain: str) -> str:
    table, col, _ = SETS[grain]

    def part(cond: str) -> str:
        if grain == "hour":  # hour buckets are whole periods
            return "0"
        return f"(SELECT count(*) FROM {table} s WHERE s.tenant_id = $1 AND s.{col} = t.p AND {cond})"

    # one index lookup in the other period per payer of the shorter part (a hash of the longer part costs more)
    both = (
        f"""(SELECT count(*) FROM {table} s WHERE s.tenant_id = $1 AND s.{col} = t.p AND s.last_at >= t.x
              AND (SELECT s2.first_at FROM {table} s2 WHERE s2.tenant_id = $1 AND s2.{col} = t.q
                     AND s2.payer = s.payer) < t.y)"""
        if grain != "hour"
        else "0"
    )
    both_q = (
        f"""(SELECT count(*) FROM {table} s2 WHERE s2.tenant_id = $1 AND s2.{col} = t.q AND s2.first_at < t.y
              AND (SELECT s.last_at FROM {table} s WHERE s.tenant_id = $1 AND s.{col} = t.p
                     AND s.payer = s2.payer) >= t.x)"""
        if grain != "hour"
        else "0"
    )
    return f"""SELECT t.i, sum(t.coef * CASE t.kind
        WHEN 'all' THEN coalesce((SELECT c.n FROM analytics_payer_counts c
                                  WHERE c.tenant_id = $1 AND c.grain = $2 AND c.bucket = t.p), 0)
        WHEN 'first_lt' THEN {part("s.first_at < t.x")}
        WHEN 'first_ge' THEN {part("s.first_at >= t.x")}
        WHEN 'last_ge' THEN {part("s.last_at >= t.x")}
        WHEN 'last_lt' THEN {part("s.last_at < t.x")}
        WHEN 'both_p' THEN {both}
        WHEN 'both_q' THEN {both_q}
    END) AS n
    FROM unnest($3::int[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[],
                $8::timestamptz[], $9::int[]) AS t(i, kind, p, x, q, y, coef)
    GROUP BY t.i"""


def _pending_sql(grain: str) -> str:
    table, col, _ = SETS[grain]
    seen = "TRUE" if grain == "hour" else "s.last_at >= n.a AND s.first_at < n.b"
    return f"""SELECT n.i, count(*) AS n FROM (
        SELECT DISTINCT l.i, l.a, l.b, p.payer FROM analytics_pending p
        JOIN unnest($2::timestamptz[], $3::timestamptz[], $4::int[]) AS l(a, b, i)
          ON p.created_at >= l.a AND p.created_at < l.b
        WHERE p.tenant_id = $1 AND p.created_at >= $5 AND p.created_at < $6
          AND x402_payment_outcome(p.kind, p.status) = 'succeeded' AND p.payer IS NOT NULL AND p.payer <> ''
    ) n
    WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE s.tenant_id = $1 AND s.payer = n.payer
                        AND s.{col} IN (date_trunc('{grain}', n.a, 'UTC'),
                                        date_trunc('{grain}', n.b - interval '1 microsecond', 'UTC'))
                        AND {seen})
    GROUP BY n.i"""


TERMS_SQL = {g: _terms_sql(g) for g in SETS}
PENDING_SQL = {g: _pending_sql(g) for g in SETS}


EdgeTerm = tuple[int, str, datetime, int, int, int]

#: (bucket index, kind, UTC period, hour x, hour y, coefficient) -> the weighted counts of ``edge_terms``; the
#: ``both_*`` kinds differ in which hour range is indexable (the other is a filter: ``+ 0``)
EDGE_TERMS_SQL = """SELECT t.i, sum(t.coef * CASE t.kind
        WHEN 'all' THEN (SELECT c.n FROM analytics_payer_counts c
                         WHERE c.tenant_id = $1 AND c.grain = $2 AND c.bucket = t.d)
        WHEN 'first_lt' THEN (SELECT sum(e.n) FROM analytics_payer_edges e
                              WHERE e.tenant_id = $1 AND e.grain = $2 AND e.period = t.d AND e.edge = 'first'
                                AND e.hour < t.x)
        WHEN 'last_ge' THEN (SELECT sum(e.n) FROM analytics_payer_edges e
                             WHERE e.tenant_id = $1 AND e.grain = $2 AND e.period = t.d AND e.edge = 'last'
                               AND e.hour >= t.x)
        WHEN 'both_last' THEN (SELECT sum(p.n) FROM analytics_payer_pairs p
                               WHERE p.tenant_id = $1 AND p.grain = $2 AND p.period = t.d AND p.last_hour >= t.x
                                 AND p.first_hour + 0 < t.y)
        WHEN 'both_first' THEN (SELECT sum(p.n) FROM analytics_payer_pairs p
                                WHERE p.tenant_id = $1 AND p.grain = $2 AND p.period = t.d AND p.first_hour < t.y
                                  AND p.last_hour + 0 >= t.x)
    END) AS n
    FROM unnest($3::int[], $4::text[], $5::timestamptz[], $6::int[], $7::int[], $8::int[]) AS t(i, kind, d, x, y, coef)
    GROUP BY t.i"""


def edge_terms(bounds: list[tuple[datetime, datetime]], grain: str) -> list[EdgeTerm]:
    """Rows whose weighted counts sum to each bucket's payers from the hour counts of the UTC periods (day or
    week); Unsplittable when a bucket is not a suffix of one period followed by a prefix of the next (or one of them
    alone), or not on whole UTC hours."""
    hour = timedelta(hours=1)
    size = SETS[grain][2]
    n = size // hour
    out: list[EdgeTerm] = []
    for i, (a, b) in enumerate(bounds):
        p = period_start(a, grain)
        q = p + size
        if b > q + size or (a - p) % hour or (b - p) % hour:
            raise Unsplittable(f"[{a}, {b}) in UTC {grain}s")
        x = (a - p) // hour
        if b <= q:  # inside P: whole, a prefix or a suffix
            y = (b - p) // hour
            if x == 0:
                out.append((i, "all", p, 0, 0, 1) if y == n else (i, "first_lt", p, y, 0, 1))
            elif y == n:
                out.append((i, "last_ge", p, x, 0, 1))
            else:
                raise Unsplittable(f"[{a}, {b}) inside one UTC {grain}")
            continue
        y = (b - q) // hour
        out.append((i, "all", p, 0, 0, 1) if x == 0 else (i, "last_ge", p, x, 0, 1))
        out.append((i, "all", q, 0, 0, 1) if y == n else (i, "first_lt", q, y, 0, 1))
        out.append((i, "both_last" if n - x <= y else "both_first", q, x, y, -1))
    return out


async def unique_payers(conn: Conn, tenant: uuid.UUID, window: Window, starts: list[datetime]) -> list[int]:
    """Payers with a succeeded payment in each bucket (``starts`` and the window's end bound them), in order.

    Raises Unsplittable when a bucket cannot be counted from the sets (the caller counts it from hourly rows)."""
    grain = window.interval
    bounds = list(zip(starts, [*starts[1:], window.end], strict=True))
    out = [0] * len(bounds)
    if not bounds:
        return out
    try:
        if grain != "day":
            raise Unsplittable("hour counts are kept for UTC days (hours are whole sets; weeks use the sets)")
        erows = edge_terms(bounds, grain)
        ecols = [list(c) for c in zip(*erows, strict=True)]
        for r in await conn.fetch(EDGE_TERMS_SQL, tenant, grain, *ecols):
            out[r["i"]] += int(r["n"] or 0)
    except Unsplittable:
        rows = terms(bounds, grain)
        cols = list(zip(*rows, strict=True))
        for r in await conn.fetch(TERMS_SQL[grain], tenant, grain, *[list(c) for c in cols]):
            out[r["i"]] += int(r["n"])
    a, b = [x for x, _ in bounds], [y for _, y in bounds]
    for r in await conn.fetch(PENDING_SQL[grain], tenant, a, b, list(range(len(bounds))), a[0], b[-1]):
        out[r["i"]] += int(r["n"])
    return out
