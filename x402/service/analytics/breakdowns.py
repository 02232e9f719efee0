"""Breakdowns of one tenant's payments over a window of whole UTC hours: per resource, network/asset, payer,
failure reason, risk outcome, payTo (payouts), and weekly cohorts of payers.

Each function returns ``(body, csv_rows)``: the JSON answer and the flat rows of its CSV export.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.service.analytics import payersums
from x402.service.analytics.money import usd, usd_decimals, volume_json
from x402.service.analytics.sources import source, split_source
from x402.service.analytics.window import Window, local_iso

Conn = asyncpg.Connection | PoolConnectionProxy
Answer = tuple[dict[str, Any], list[dict[str, Any]]]
Volume = list[tuple[str, str, int]]


def _args(tenant: uuid.UUID, window: Window, raw: bool) -> tuple[Any, ...]:
    base: tuple[Any, ...] = (tenant, window.start, window.end)
    return (*base, "UTC", "hour") if raw else base


def _src(table: str, raw: bool) -> str:
    """The raw records in the rollup's shape, or whole UTC days of its daily twin plus the edge hours, signed."""
    return source(table, raw=True) if raw else split_source(table)


def _head(window: Window) -> dict[str, Any]:
    return {"from": local_iso(window.start, 0), "to": local_iso(window.end, 0)}


def _iso(value: Any) -> str | None:
    return None if value is None else local_iso(value, 0)


def _merge(volume: Volume) -> Volume:
    """Sum the amounts of one network and asset (rows of several registry ids)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for n, a, v in volume:
        out[(n, a)] += v
    return [(n, a, v) for (n, a), v in out.items() if v]


def _top(rows: list[dict[str, Any]], limit: int, *keys: str) -> list[dict[str, Any]]:
    """Biggest USD first, then by the count keys, then by name (stable, so equal figures keep a fixed order)."""
    rows.sort(key=lambda r: (-Decimal(r["usd"]), *(-r[k] for k in keys)))
    return rows[:limit]


async def resources(conn: Conn, tenant: uuid.UUID, window: Window, limit: int, *, raw: bool = False) -> Answer:
    """Counts and volume per paid resource (URL and method, with its registry id when listed)."""
    sql = f"""SELECT resource, method, resource_id::text AS resource_id, network, asset, sum(total) AS total,
                     sum(succeeded) AS succeeded, sum(failed) AS failed, sum(pending) AS pending,
                     sum(volume) AS volume
              FROM {_src("analytics_hourly", raw)} GROUP BY resource, method, resource_id, network, asset
              HAVING sum(total) > 0 ORDER BY resource, method, resource_id"""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in await conn.fetch(sql, *_args(tenant, window, raw)):
        g = groups.setdefault(
            (r["resource"], r["method"]),
            {"resource": r["resource"], "method": r["method"], "registryId": None, "count": 0, "succeeded": 0,
             "failed": 0, "pending": 0, "_volume": []},
        )  # fmt: skip
        g["registryId"] = max(g["registryId"] or "", r["resource_id"] or "") or None
        for k, col in (("count", "total"), ("succeeded", "succeeded"), ("failed", "failed"), ("pending", "pending")):
            g[k] += int(r[col])
        if r["volume"]:
            g["_volume"].append((r["network"], r["asset"], int(r["volume"])))
    rows = []
    for key in sorted(groups):
        groups[key]["_volume"] = _merge(groups[key]["_volume"])
        g = groups[key]
        vol = g.pop("_volume")
        rows.append({**g, "volume": volume_json(vol), "usd": usd(vol)})
    rows = _top(rows, limit, "succeeded", "count")
    return {**_head(window), "resources": rows}, rows


# Every network and asset the tenant has a succeeded payment in (the lifetime counts of migration 0037, and the
# records not folded yet): the only ones with volume.
_PAID_ASSETS = """SELECT network, asset FROM analytics_payer_asset_counts WHERE tenant_id = $1 AND grain = 'total'
    UNION SELECT network, asset FROM analytics_pending WHERE tenant_id = $1"""


async def _usd_scales(conn: Conn, tenant: uuid.UUID) -> tuple[list[str], list[str], list[Decimal]]:
    """(networks, assets, scales) of the USD stablecoins the tenant was paid in: the factor that turns atomic units
    into USD (10^-decimals), for ordering by USD in SQL."""
    out: tuple[list[str], list[str], list[Decimal]] = ([], [], [])
    for r in await conn.fetch(_PAID_ASSETS, tenant):
        decimals = usd_decimals(r["network"], r["asset"])
        if decimals is not None:
            out[0].append(r["network"])
            out[1].append(r["asset"])
            out[2].append(Decimal(1).scaleb(-decimals))
    return out


def _payer_groups(src: str) -> str:
    """Per payer, network and asset in the window: payments succeeded and failed, volume (groups with payments)."""
    return f"""SELECT payer, network, asset, sum(succeeded) AS succeeded, sum(failed) AS failed,
                      sum(volume) AS volume
               FROM {src} GROUP BY 1, 2, 3 HAVING sum(succeeded) <> 0 OR sum(failed) <> 0"""


async def networks(conn: Conn, tenant: uuid.UUID, window: Window, limit: int, *, raw: bool = False) -> Answer:
    """Counts, volume and unique payers per network and asset."""
    args = _args(tenant, window, raw)
    sums = await conn.fetch(
        f"""SELECT network, asset, sum(total) AS total, sum(succeeded) AS succeeded, sum(failed) AS failed,
                   sum(pending) AS pending, sum(volume) AS volume
            FROM {source("analytics_totals_hourly", raw=raw)} GROUP BY 1, 2 HAVING sum(total) > 0 ORDER BY 1, 2""",
        *args,
    )
    if raw:
        payers = {
            (r["network"], r["asset"]): int(r["n"])
            for r in await conn.fetch(
                f"""SELECT network, asset, count(*) AS n
                    FROM ({_payer_groups(source("analytics_payers_hourly", raw=True))}) p
                    WHERE succeeded > 0 GROUP BY 1, 2""",
                *args,
            )
        }
    else:
        payers = await payersums.unique_payers(conn, tenant, window.start, window.end)
    rows = [
        {
            "network": r["network"],
            "asset": r["asset"],
            "count": int(r["total"]),
            "succeeded": int(r["succeeded"]),
            "failed": int(r["failed"]),
            "pending": int(r["pending"]),
            "amount": str(int(r["volume"])),
            "usd": usd([(r["network"], r["asset"], int(r["volume"]))]),
            "uniquePayers": payers.get((r["network"], r["asset"]), 0),
        }
        for r in sums
    ]
    rows = _top(rows, limit, "succeeded", "count")
    return {**_head(window), "networks": rows}, rows


# Per payer in the window (USD of the stablecoins by the scales $a..$a+2), the top ``$a+3`` payers in the order of
# ``_top`` (USD, succeeded, count, then name by code point) with the number of payers with a succeeded payment and
# with more than one. A payer is listed when it has a payment in the window: the sums of its groups are exact and
# not negative, so the payer's total count is positive exactly when one of its groups has a payment.
def _payers_sql(src: str, at: int) -> str:
    return f"""WITH p AS (
    SELECT s.payer, sum(s.succeeded) AS succeeded, sum(s.failed) AS failed,
           sum(s.volume * coalesce(u.scale, 0)) AS usd
    FROM {src} LEFT JOIN unnest(${at}::text[], ${at + 1}::text[], ${at + 2}::numeric[]) AS u(network, asset, scale)
      ON u.network = s.network AND u.asset = s.asset
    GROUP BY s.payer HAVING sum(s.succeeded) + sum(s.failed) > 0
)
SELECT payer, succeeded, failed, count(*) FILTER (WHERE succeeded > 0) OVER () AS paying,
       count(*) FILTER (WHERE succeeded > 1) OVER () AS repeat
FROM p ORDER BY usd DESC, succeeded DESC, succeeded + failed DESC, payer COLLATE "C" LIMIT ${at + 3}"""


_PAYERS_EXACT = _payers_sql(payersums.SOURCE, 11)

# The candidates for the top ``$14`` payers, ranked by a float8 USD figure with a bound on its error (the exact
# ranking is done on the candidates only: numeric sums over every payer of the window cost ~3x the grouping).
# ``err`` bounds the rounding of the conversions, products and the sum of a payer's ``n`` signed terms by
# (n + 4) * 2u * sum|term| (u = 2^-53 ~ 1.1e-16; 4.5e-16 > 4u), so each payer's exact USD lies in [usd - err,
# usd + err]. With ``lo`` the ``$14``-th largest ``usd - err``, at least ``$14`` payers are certainly worth ``lo`` or
# more, so a payer whose ``usd + err`` is below ``lo`` is certainly not in the top ``$14``: the candidates
# (``usd + err >= lo``) hold the exact top list, whatever its tie-breaks. One row per candidate, each carrying the
# window's numbers of paying and repeat payers. Counts are summed as float8 (by value, unlike the numeric state of
# sum(bigint)): exact while below 2^53 payments.
_PAYER_CANDIDATES = f"""WITH p AS MATERIALIZED (
    SELECT s.payer, sum(s.succeeded::float8)::bigint AS succeeded, sum(s.failed::float8)::bigint AS failed,
           sum(s.volume::float8 * coalesce(u.scale, 0)) AS usd,
           (count(*) + 4) * 4.5e-16 * sum(abs(s.volume::float8 * coalesce(u.scale, 0))) AS err
    FROM {payersums.SOURCE} LEFT JOIN unnest($11::text[], $12::text[], $13::float8[]) AS u(network, asset, scale)
      ON u.network = s.network AND u.asset = s.asset
    GROUP BY s.payer HAVING sum(s.succeeded::float8) + sum(s.failed::float8) > 0
), cut AS (SELECT usd - err AS lo FROM p ORDER BY usd - err DESC OFFSET $14 - 1 LIMIT 1)
SELECT payer, succeeded, failed,
       (SELECT count(*) FROM p WHERE succeeded > 0) AS paying,
       (SELECT count(*) FROM p WHERE succeeded > 1) AS repeat
FROM p WHERE usd + err >= coalesce((SELECT lo FROM cut), '-infinity'::float8)"""

# More candidates than this (many payers tied at one float figure, e.g. all at 0 USD): the exact query ranks them
CANDIDATES_MAX = 2000


def _too_many(found: int, want: int) -> bool:
    return found > max(CANDIDATES_MAX, 2 * want)


# the listed payers' volume per network and asset
_PAYER_VOLUME = f"""SELECT payer, network, asset, sum(volume) AS volume FROM {payersums.SOURCE_OF_PAYERS}
    GROUP BY 1, 2, 3 HAVING sum(volume) <> 0"""


async def _top_payers(
    conn: Conn, tenant: uuid.UUID, window: Window, limit: int
) -> tuple[list[dict[str, Any]], int, int]:
    """(top rows, payers with a succeeded payment, with more than one) from the payer rollups (``payersums``)."""
    nets, assets, scales = await _usd_scales(conn, tenant)
    plan = await payersums.window_plan(conn, tenant, window.start, window.end)
    args = plan.args(tenant, window.start, window.end)
    want = max(limit, 1)  # (one row carries the counts)
    big = plan.big()
    month = big is not None and big[0] is not None
    if month:
        # a month's rows are a third of the monthly table (one tenant, ~3 months): the planner scans the whole
        # table; its (tenant, month) index reads only them (1M records: 82 -> 66 ms; the lifetime plan is faster
        # with its scan)
        await conn.execute("SET LOCAL enable_seqscan = off")
    found = await conn.fetch(_PAYER_CANDIDATES, *args, nets, assets, [float(x) for x in scales], want)
    if month:
        await conn.execute("SET LOCAL enable_seqscan = on")
    paying, repeat = (int(found[0]["paying"]), int(found[0]["repeat"])) if found else (0, 0)
    if _too_many(len(found), want):
        found = (await conn.fetch(_PAYERS_EXACT, *args, nets, assets, scales, want))[:limit]
    volume: dict[str, Volume] = defaultdict(list)
    for r in await conn.fetch(_PAYER_VOLUME, *args, [r["payer"] for r in found]):
        volume[r["payer"]].append((r["network"], r["asset"], int(r["volume"])))
    rows = []
    for r in sorted(found, key=lambda r: str(r["payer"])):  # by name (code point) among equal figures, as raw
        n, f, vol = int(r["succeeded"]), int(r["failed"]), volume[r["payer"]]
        rows.append({"payer": r["payer"], "succeeded": n, "failed": f, "count": n + f,
                     "volume": volume_json(vol), "usd": usd(vol)})  # fmt: skip
    return _top(rows, limit, "succeeded", "count"), paying, repeat


async def payers(conn: Conn, tenant: uuid.UUID, window: Window, limit: int, *, raw: bool = False) -> Answer:
    """Top customers: in-window payments and volume, lifetime first / last seen and value; the repeat rate.

    From the rollups, SQL picks the candidates for the top list and the counts (``_PAYER_CANDIDATES``) and the
    candidates are ranked here by their exact figures; from the raw records, every payer's groups are fetched and
    ranked here (the same figures, computed independently)."""
    if raw:
        rows, paying, repeat = await _payers_raw(conn, tenant, window, limit)
    else:
        rows, paying, repeat = await _top_payers(conn, tenant, window, limit)
    life = await _lifetime(conn, tenant, [r["payer"] for r in rows], raw=raw)
    for row in rows:
        first, last, vol, n = life.get(row["payer"], (None, None, [], 0))
        row.update(
            firstSeen=_iso(first),
            lastSeen=_iso(last),
            lifetimePayments=n,
            lifetimeValue=volume_json(vol),
            lifetimeUsd=usd(vol),
        )
    body = {
        **_head(window),
        "uniquePayers": paying,
        "repeatPayers": repeat,
        "repeatRate": round(repeat / paying, 4) if paying else 0.0,
        "payers": rows,
    }
    return body, rows


async def _payers_raw(
    conn: Conn, tenant: uuid.UUID, window: Window, limit: int
) -> tuple[list[dict[str, Any]], int, int]:
    """(top rows, payers with a succeeded payment, with more than one) from the raw records, ranked here."""
    groups: dict[str, dict[str, Any]] = {}
    for r in await conn.fetch(_payer_groups(source("analytics_payers_hourly", raw=True)), *_args(tenant, window, True)):
        g = groups.setdefault(r["payer"], {"payer": r["payer"], "succeeded": 0, "failed": 0, "_volume": []})
        g["succeeded"] += int(r["succeeded"])
        g["failed"] += int(r["failed"])
        if r["volume"]:
            g["_volume"].append((r["network"], r["asset"], int(r["volume"])))
    paying = [g for g in groups.values() if g["succeeded"] > 0]
    repeat = sum(1 for g in paying if g["succeeded"] > 1)
    rows = []
    for name in sorted(groups):
        g = groups[name]
        vol = g.pop("_volume")
        rows.append({**g, "count": g["succeeded"] + g["failed"], "volume": volume_json(vol), "usd": usd(vol)})
    return _top(rows, limit, "succeeded", "count"), len(paying), repeat


_LIFETIME_RAW = """SELECT payer, network, asset, count(*) AS succeeded, sum(amount) AS volume,
        min(created_at) AS first_at, max(created_at) AS last_at
    FROM payments WHERE tenant_id = $1 AND payer = ANY($2::text[])
      AND x402_payment_outcome(kind, status) = 'succeeded' GROUP BY 1, 2, 3"""
_LIFETIME = """SELECT payer, network, asset, succeeded, volume, first_at, last_at FROM analytics_payers
    WHERE tenant_id = $1 AND payer = ANY($2::text[])
    UNION ALL
    SELECT payer, network, asset, count(*), sum(amount), min(created_at), max(created_at) FROM analytics_pending
    WHERE tenant_id = $1 AND payer = ANY($2::text[]) AND x402_payment_outcome(kind, status) = 'succeeded'
    GROUP BY 1, 2, 3"""


async def _lifetime(
    conn: Conn, tenant: uuid.UUID, names: list[str], *, raw: bool
) -> dict[str, tuple[Any, Any, Volume, int]]:
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    count: dict[str, int] = defaultdict(int)
    volume: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for r in await conn.fetch(_LIFETIME_RAW if raw else _LIFETIME, tenant, names):
        p = r["payer"]
        first[p] = r["first_at"] if p not in first else min(first[p], r["first_at"])
        last[p] = r["last_at"] if p not in last else max(last[p], r["last_at"])
        count[p] += int(r["succeeded"])
        volume[p][(r["network"], r["asset"])] += int(r["volume"])
    return {p: (first[p], last[p], [(n, a, v) for (n, a), v in volume[p].items()], count[p]) for p in first}


async def failures(conn: Conn, tenant: uuid.UUID, window: Window, limit: int, *, raw: bool = False) -> Answer:
    """Failed payments by reason, record kind and network, with each one's share of all failures."""
    rows_db = await conn.fetch(
        f"""SELECT reason, kind, network, sum(n) AS n FROM {source("analytics_failures_hourly", raw=raw)}
            GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3""",
        *_args(tenant, window, raw),
    )
    total = sum(int(r["n"]) for r in rows_db)
    rows = [
        {
            "reason": r["reason"],
            "kind": r["kind"],
            "network": r["network"],
            "count": int(r["n"]),
            "share": round(int(r["n"]) / total, 4),
        }
        for r in rows_db[:limit]
    ]
    return {**_head(window), "failed": total, "failures": rows}, rows


async def risk(conn: Conn, tenant: uuid.UUID, window: Window, limit: int, *, raw: bool = False) -> Answer:
    """Risk assessments by recommendation and level, and the flags raised (records carrying an assessment)."""
    rows_db = await conn.fetch(
        f"""SELECT risk, level, flag, sum(n) AS n FROM {source("analytics_risk_hourly", raw=raw)}
            GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3""",
        *_args(tenant, window, raw),
    )
    outcomes = [
        {"recommendation": r["risk"], "level": r["level"], "count": int(r["n"])} for r in rows_db if not r["flag"]
    ]
    flags: dict[str, int] = defaultdict(int)
    for r in rows_db:
        if r["flag"]:
            flags[r["flag"]] += int(r["n"])
    flag_rows = [{"code": c, "count": n} for c, n in sorted(flags.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]
    body = {
        **_head(window),
        "assessed": sum(o["count"] for o in outcomes),
        "blocked": sum(o["count"] for o in outcomes if o["recommendation"] == "block"),
        "outcomes": outcomes,
        "flags": flag_rows,
    }
    csv_rows = [{"type": "outcome", **o} for o in outcomes] + [{"type": "flag", **f} for f in flag_rows]
    return body, csv_rows


async def payouts(conn: Conn, tenant: uuid.UUID, window: Window, limit: int, *, raw: bool = False) -> Answer:
    """Per payTo address and asset: settled and pending amounts; fees are the gas the facilitator paid, which the
    settlement journal does not record, so they are 0."""
    rows_db = await conn.fetch(
        f"""SELECT pay_to, network, asset, sum(succeeded) AS settled_n, sum(volume) AS settled,
                   sum(pending) AS pending_n, sum(pending_volume) AS pending
            FROM {_src("analytics_hourly", raw)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        *_args(tenant, window, raw),
    )
    rows = [
        {
            "payTo": r["pay_to"],
            "network": r["network"],
            "asset": r["asset"],
            "settled": str(int(r["settled"])),
            "settledCount": int(r["settled_n"]),
            "settledUsd": usd([(r["network"], r["asset"], int(r["settled"]))]),
            "pending": str(int(r["pending"])),
            "pendingCount": int(r["pending_n"]),
            "fees": "0",
        }
        for r in rows_db
        if r["settled_n"] or r["pending_n"]
    ]
    rows.sort(key=lambda r: (-Decimal(r["settledUsd"]), -r["settledCount"]))
    return {**_head(window), "payouts": rows[:limit]}, rows[:limit]


_OK = "x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''"
# the folded counts (analytics_cohorts), with the payers of records not folded yet counted again: their folded
# (cohort, week) pairs out, their pairs with the pending records in
_COHORTS = f"""
WITH pend AS (SELECT payer, created_at FROM analytics_pending WHERE tenant_id = $1 AND {_OK}),
life AS (SELECT a.payer, a.pf, (SELECT min(p.first_at) FROM analytics_payers p
                                WHERE p.tenant_id = $1 AND p.payer = a.payer) AS lf
         FROM (SELECT payer, min(created_at) AS pf FROM pend GROUP BY 1) a),
moved AS (
    SELECT date_trunc('week', l.lf, 'UTC') AS cohort, w.week, -1 AS n FROM life l
    JOIN analytics_payer_weeks w ON w.tenant_id = $1 AND w.payer = l.payer WHERE l.lf IS NOT NULL
    UNION ALL
    SELECT date_trunc('week', least(l.lf, l.pf), 'UTC'), wk.week, 1 FROM life l
    CROSS JOIN LATERAL (SELECT w.week FROM analytics_payer_weeks w WHERE w.tenant_id = $1 AND w.payer = l.payer
                        UNION SELECT date_trunc('week', created_at, 'UTC') FROM pend WHERE pend.payer = l.payer) wk
)
SELECT cohort, week, sum(n) AS n
FROM (SELECT cohort, week, n FROM analytics_cohorts
      WHERE tenant_id = $1 AND cohort >= $2 AND cohort < $3 AND week >= $2 AND week < $3
      UNION ALL SELECT cohort, week, n FROM moved) c
WHERE cohort >= $2 AND cohort < $3 AND week >= $2 AND week < $3
GROUP BY 1, 2 HAVING sum(n) > 0 ORDER BY 1, 2"""
_COHORTS_RAW = """
SELECT date_trunc('week', first_at, 'UTC') AS cohort, week, count(DISTINCT payer) AS n
FROM (SELECT payer, created_at, date_trunc('week', created_at, 'UTC') AS week,
             min(created_at) OVER (PARTITION BY payer) AS first_at
      FROM payments
      WHERE tenant_id = $1 AND x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
     ) s
WHERE first_at >= $2 AND first_at < $3 AND created_at >= $2 AND created_at < $3
GROUP BY 1, 2 ORDER BY 1, 2"""


async def cohorts(conn: Conn, tenant: uuid.UUID, window: Window, limit: int, *, raw: bool = False) -> Answer:
    """Payers grouped by the ISO week (UTC) of their first successful payment, and how many of each cohort paid
    again in each later week of the window (week 0 is the cohort itself)."""
    grid: dict[Any, dict[int, int]] = defaultdict(dict)
    for r in await conn.fetch(_COHORTS_RAW if raw else _COHORTS, tenant, window.start, window.end):
        grid[r["cohort"]][(r["week"] - r["cohort"]).days // 7] = int(r["n"])
    out, csv_rows = [], []
    for cohort in sorted(grid)[:limit]:
        size = grid[cohort].get(0, 0)
        weeks = (window.end - cohort).days // 7
        retention = [
            {"week": k, "payers": grid[cohort].get(k, 0), "rate": round(grid[cohort].get(k, 0) / size, 4)}
            for k in range(weeks)
        ]
        out.append({"cohort": local_iso(cohort, 0), "size": size, "retention": retention})
        csv_rows += [{"cohort": local_iso(cohort, 0), "size": size, **r} for r in retention]
    return {**_head(window), "cohorts": out}, csv_rows
