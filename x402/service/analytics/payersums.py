"""In-window sums per payer, network and asset (the ``payers`` and ``networks`` breakdowns), read from the payer
rollups of four grains: the tenant's whole life (``analytics_payers_total``) and UTC calendar months
(``analytics_payers_monthly``, both migration 0037), UTC days (``analytics_payers_daily``, 0036) and UTC hours
(``analytics_payers_hourly``, 0021), plus the records not folded yet.

A window of whole UTC hours is written as a signed sum of buckets (``split``): from the coarsest grain down, every
bucket more than half of whose hours still carry the same nonzero coefficient is read whole with that coefficient
(added or subtracted), and the hours left over are read from the hourly rollup. A window covering most of the
tenant's data is instead written as the lifetime minus the rest of the data's range, when that reads fewer rows
(``plan``). The payers of a month repeat over its days, so a 30-day window reads about one month of rows and a few
hours, and a 90-day one the lifetime rows and a few hours, instead of one row per payer and day. The measures are
additive, so the signed sum is exact; a group may sum to zero (callers drop those).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn = asyncpg.Connection | PoolConnectionProxy
HOUR = timedelta(hours=1)
#: grains read whole, coarsest first (the lifetime is handled by ``plan``)
GRAINS = ("month", "day")
#: rough rows per bucket relative to an hour's (a payer paying in several hours of a day has one day row)
WEIGHT = {"total": 300, "month": 180, "day": 18, "hour": 1}

Segment = tuple[datetime, datetime, int]  # [start, end) hours with a coefficient
Split = dict[str, tuple[list[datetime], list[int]]]


def floor(moment: datetime, grain: str) -> datetime:
    """Start of the UTC hour, day or calendar month holding ``moment``."""
    t = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if grain == "hour":
        return t
    t -= timedelta(hours=t.hour)
    if grain == "day":
        return t
    return t.replace(day=1)


def after(bucket: datetime, grain: str) -> datetime:
    """Start of the bucket of ``grain`` after the one starting at ``bucket``."""
    if grain == "month":
        return bucket.replace(year=bucket.year + bucket.month // 12, month=bucket.month % 12 + 1)
    return bucket + (HOUR if grain == "hour" else timedelta(days=1))


def _normal(segments: list[Segment]) -> list[Segment]:
    """The same coefficients per hour as disjoint, sorted, nonzero segments."""
    delta: dict[datetime, int] = defaultdict(int)
    for a, b, c in segments:
        delta[a] += c
        delta[b] -= c
    out: list[Segment] = []
    level, prev = 0, None
    for t in sorted(delta):
        if level and prev is not None:
            if out and out[-1][1] == prev and out[-1][2] == level:
                out[-1] = (out[-1][0], t, level)
            else:
                out.append((prev, t, level))
        level += delta[t]
        prev = t
    return out


def split(segments: list[Segment]) -> Split:
    """``{grain: (bucket starts, signs)}`` for month, day and hour whose signed sum has the coefficient of
    ``segments`` (whole UTC hours) on every hour."""
    segs = _normal(segments)
    out: Split = {}
    for grain in GRAINS:
        picked: list[tuple[datetime, int]] = []
        for a, b, _ in list(segs):
            bucket = floor(a, grain)
            while bucket < b:
                nxt = after(bucket, grain)
                hours: dict[int, float] = defaultdict(float)
                for x, y, c in segs:
                    lo, hi = max(x, bucket), min(y, nxt)
                    if lo < hi:
                        hours[c] += (hi - lo) / HOUR
                best = max(hours.items(), key=lambda kv: kv[1], default=None)
                if best is not None and best[1] * 2 > (nxt - bucket) / HOUR and (bucket, best[0]) not in picked:
                    picked.append((bucket, best[0]))
                    segs = _normal([*segs, (bucket, nxt, -best[0])])
                bucket = nxt
        out[grain] = ([x for x, _ in picked], [c for _, c in picked])
    hours_out: list[tuple[datetime, int]] = []
    for a, b, c in segs:
        h = a
        while h < b:
            hours_out.append((h, c))
            h += HOUR
    out["hour"] = ([x for x, _ in hours_out], [c for _, c in hours_out])
    return out


def cost(s: Split) -> int:
    return sum(WEIGHT[g] * len(starts) for g, (starts, _) in s.items())


@dataclass(frozen=True)
class Plan:
    """How to read a window: the lifetime rows with coefficient ``total`` (0 or 1) plus the signed buckets."""

    total: int
    parts: Split

    def args(self, tenant: uuid.UUID, start: datetime, end: datetime) -> tuple[Any, ...]:
        """The arguments of ``SOURCE``: $1 tenant, $2 window start, $3 window end, $4 lifetime coefficient,
        $5..$10 the buckets and signs of month, day and hour."""
        s = self.parts
        return (tenant, start, end, self.total, *s["month"], *s["day"], *s["hour"])

    def big(self) -> tuple[datetime | None, Plan] | None:
        """The plan's biggest bucket when it is added (the lifetime: None, or a month) and the plan without it;
        None when the plan has neither."""
        if self.total:
            return None, Plan(0, self.parts)
        months, signs = self.parts["month"]
        if 1 not in signs:
            return None
        i = signs.index(1)
        rest = ([*months[:i], *months[i + 1 :]], [*signs[:i], *signs[i + 1 :]])
        return months[i], Plan(0, {**self.parts, "month": rest})


def plan(start: datetime, end: datetime, data: tuple[datetime, datetime] | None) -> Plan:
    """How to read the window [start, end); ``data``: a range of whole hours holding every folded record of the
    tenant (None: no folded record). The lifetime minus the rest of the range when that reads fewer rows."""
    direct = split([(start, end, 1)])
    if data is None:
        return Plan(0, direct)
    lo, hi = data
    rest = [(min(lo, start), start, -1), (end, max(hi, end), -1)]
    complement = split([seg for seg in rest if seg[0] < seg[1]])
    if WEIGHT["total"] + cost(complement) < cost(direct):
        return Plan(1, complement)
    return Plan(0, direct)


#: The folded records' range: whole months of analytics_payers_monthly.
RANGE = """SELECT min(month) AS lo, max(month) AS hi FROM analytics_payers_monthly WHERE tenant_id = $1"""


async def window_plan(conn: Conn, tenant: uuid.UUID, start: datetime, end: datetime) -> Plan:
    """The plan of a window, from the range of the tenant's folded records. Read it in the same snapshot as the
    figures (``session.reading``): a record folded in between, outside the range, would be in the lifetime rows and
    not subtracted."""
    row = await conn.fetchrow(RANGE, tenant)
    data = None if row is None or row["lo"] is None else (row["lo"], after(row["hi"], "month"))
    return plan(start, end, data)


def _grain(table: str, col: str, at: int, extra: str = "") -> str:
    # one scan per bucket (OFFSET 0 keeps it a subquery: joined, the planner hashes the whole table's rows)
    return f"""SELECT r.payer, r.network, r.asset, t.sign * r.succeeded, t.sign * r.failed,
           CASE WHEN t.sign = 1 THEN r.volume ELSE t.sign * r.volume END
    FROM unnest(${at}::timestamptz[], ${at + 1}::int[]) AS t(at, sign)
    CROSS JOIN LATERAL (SELECT payer, network, asset, succeeded, failed, volume FROM {table}
                        WHERE tenant_id = $1 AND {col} = t.at{extra} OFFSET 0) r"""


#: ``FROM`` clause text: (payer, network, asset, succeeded, failed, volume) rows, signed, whose sums per group are
#: the window's; arguments from ``Plan.args``.
def _source(extra: str = "") -> str:
    return f"""(
    SELECT payer, network, asset, succeeded, failed, volume FROM analytics_payers_total
    WHERE tenant_id = $1 AND $4::int = 1{extra}
    UNION ALL {_grain("analytics_payers_monthly", "month", 5, extra)}
    UNION ALL {_grain("analytics_payers_daily", "day", 7, extra)}
    UNION ALL {_grain("analytics_payers_hourly", "hour", 9, extra)}
    UNION ALL
    SELECT payer, network, asset, (o = 'succeeded')::int, (o = 'failed')::int,
           CASE WHEN o = 'succeeded' THEN amount ELSE 0 END
    FROM (SELECT payer, network, asset, amount, x402_payment_outcome(kind, status) AS o FROM analytics_pending
          WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3{extra}) p
    WHERE o IN ('succeeded', 'failed') AND payer IS NOT NULL AND payer <> ''
) s"""


SOURCE = _source()
#: ``SOURCE`` of the payers in ``$11`` only (the filter inside every bucket's scan, where its index serves it)
SOURCE_OF_PAYERS = _source(" AND payer = ANY($11::text[])")


#: Unique payers per network and asset in the window (payers with a succeeded payment), counted as the groups of the
#: plan's biggest bucket with a succeeded payment (``analytics_payer_asset_counts``; ``$11`` the month when it is
#: one) corrected by the groups the other buckets change: a group whose bucket count is positive and whose window
#: count is not goes out, one whose bucket count is 0 (or that has no row there) and whose window count is positive
#: comes in. Only the few rows of the other buckets are grouped, not the big bucket's. Arguments: ``Plan.args`` of
#: the plan without the big bucket (and the month).
def _uniques_sql(table: str, grain: str, where: str) -> str:
    bucket = "'-infinity'" if grain == "total" else "$11"
    return f"""WITH small AS (
    SELECT payer, network, asset, sum(succeeded) AS n FROM {SOURCE} GROUP BY 1, 2, 3 HAVING sum(succeeded) <> 0
), fix AS (  -- one index lookup per group (reading the big bucket whole costs more)
    SELECT network, asset, CASE WHEN coalesce(b, 0) > 0 THEN -(b + n <= 0)::int ELSE (n > 0)::int END AS n
    FROM (SELECT s.network, s.asset, s.n,
                 (SELECT b.succeeded FROM {table} b WHERE b.tenant_id = $1 AND {where} AND b.payer = s.payer
                    AND b.network = s.network AND b.asset = s.asset) AS b
          FROM small s OFFSET 0) x
)
SELECT network, asset, sum(n) AS n FROM (
    SELECT network, asset, n FROM analytics_payer_asset_counts
    WHERE tenant_id = $1 AND grain = '{grain}' AND bucket = {bucket}
    UNION ALL SELECT network, asset, n FROM fix
) u GROUP BY 1, 2"""


UNIQUES_TOTAL = _uniques_sql("analytics_payers_total", "total", "TRUE")
UNIQUES_MONTH = _uniques_sql("analytics_payers_monthly", "month", "b.month = $11")
#: the same from every bucket of the plan (no big bucket to count from)
UNIQUES = f"""SELECT network, asset, count(*) AS n FROM (
    SELECT payer, network, asset FROM {SOURCE} GROUP BY 1, 2, 3 HAVING sum(succeeded) > 0) p GROUP BY 1, 2"""


async def unique_payers(conn: Conn, tenant: uuid.UUID, start: datetime, end: datetime) -> dict[tuple[str, str], int]:
    """Payers with a succeeded payment in [start, end) per (network, asset) (absent: 0)."""
    p = await window_plan(conn, tenant, start, end)
    big = p.big()
    if big is None:
        rows = await conn.fetch(UNIQUES, *p.args(tenant, start, end))
    elif big[0] is None:
        rows = await conn.fetch(UNIQUES_TOTAL, *big[1].args(tenant, start, end))
    else:
        rows = await conn.fetch(UNIQUES_MONTH, *big[1].args(tenant, start, end), big[0])
    return {(r["network"], r["asset"]): int(r["n"]) for r in rows if r["n"]}
