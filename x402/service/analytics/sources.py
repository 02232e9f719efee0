"""The relations analytics queries read: the hourly rollups plus the records not folded into them yet (migration
0021), or the same shape computed from the raw payment records (for windows the rollups cannot bucket exactly,
and as the benchmark's baseline).

Every query takes $1 tenant, $2 window start, $3 window end, $4 time zone, $5 bucket unit. A raw source puts each
record in its bucket directly (``hour`` = the bucket start), so ``date_trunc($5, hour, $4)`` of the outer query is
the same for every source. Windows of rollup reads are whole UTC hours, so a record is in the window exactly when
its hour is.
"""

from __future__ import annotations

#: The columns of each rollup, in the order every source of it yields them.
COLUMNS = {
    "analytics_hourly": "tenant_id, hour, network, asset, pay_to, resource, method, resource_id, total, succeeded, "
    "failed, pending, volume, pending_volume",
    "analytics_totals_hourly": "tenant_id, hour, network, asset, total, succeeded, failed, pending, volume, "
    "pending_volume",
    "analytics_payers_hourly": "tenant_id, hour, payer, network, asset, succeeded, failed, volume, first_at, last_at",
    "analytics_latency_hourly": "tenant_id, hour, op, bin, n",
    "analytics_failures_hourly": "tenant_id, hour, kind, reason, network, n",
    "analytics_risk_hourly": "tenant_id, hour, kind, risk, level, flag, n",
}

_SHAPES = {
    "analytics_hourly": """SELECT tenant_id, hour, network, asset, pay_to, resource, method, resource_id,
        1 AS total, (o = 'succeeded')::int AS succeeded, (o = 'failed')::int AS failed,
        (o = 'pending')::int AS pending, CASE WHEN o = 'succeeded' THEN amount ELSE 0 END AS volume,
        CASE WHEN o = 'pending' THEN amount ELSE 0 END AS pending_volume
      FROM {rows} r WHERE o IS NOT NULL""",
    "analytics_totals_hourly": """SELECT tenant_id, hour, network, asset,
        1 AS total, (o = 'succeeded')::int AS succeeded, (o = 'failed')::int AS failed,
        (o = 'pending')::int AS pending, CASE WHEN o = 'succeeded' THEN amount ELSE 0 END AS volume,
        CASE WHEN o = 'pending' THEN amount ELSE 0 END AS pending_volume
      FROM {rows} r WHERE o IS NOT NULL""",
    "analytics_payers_hourly": """SELECT tenant_id, hour, payer, network, asset,
        (o = 'succeeded')::int AS succeeded, (o = 'failed')::int AS failed,
        CASE WHEN o = 'succeeded' THEN amount ELSE 0 END AS volume,
        CASE WHEN o = 'succeeded' THEN created_at END AS first_at,
        CASE WHEN o = 'succeeded' THEN created_at END AS last_at
      FROM {rows} r WHERE o IN ('succeeded', 'failed') AND payer IS NOT NULL AND payer <> ''""",
    "analytics_latency_hourly": """SELECT tenant_id, hour,
        CASE WHEN kind = 'settle' THEN 'settle' ELSE 'verify' END AS op, x402_latency_bin(latency_ms) AS bin, 1 AS n
      FROM {rows} r WHERE latency_ms IS NOT NULL""",
    "analytics_failures_hourly": """SELECT tenant_id, hour, kind, coalesce(reason, '') AS reason, network, 1 AS n
      FROM {rows} r WHERE o = 'failed'""",
    "analytics_risk_hourly": """SELECT tenant_id, hour, kind, risk, coalesce(risk_level, '') AS level, f.flag,
        1 AS n
      FROM {rows} r CROSS JOIN LATERAL
        (SELECT '' AS flag UNION ALL SELECT DISTINCT unnest(string_to_array(nullif(r.risk_flags, ''), ','))) f
      WHERE risk IS NOT NULL""",
}


def _rows(relation: str, hour: str) -> str:
    return f"""(SELECT tenant_id, {hour} AS hour, network, asset, pay_to, resource, method, resource_id, kind,
        reason, payer, amount, created_at, latency_ms, risk, risk_level, risk_flags,
        x402_payment_outcome(kind, status) AS o
      FROM {relation} WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3)"""


RAW_ROWS = _rows("payments", "date_trunc($5, created_at, $4)")
PENDING_ROWS = _rows("analytics_pending", "date_trunc('hour', created_at, 'UTC')")


def source(table: str, *, raw: bool) -> str:
    """``FROM`` clause text for a rollup: its rows in the window plus the pending records in its shape, or the
    whole shape computed from the raw payment records."""
    if raw:
        return f"({_SHAPES[table].format(rows=RAW_ROWS)}) s"
    return (
        f"(SELECT {COLUMNS[table]} FROM {table} WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 "
        f"UNION ALL {_SHAPES[table].format(rows=PENDING_ROWS)}) s"
    )


#: Hourly rollups with a daily twin (migrations 0036, 0038): (daily table, dimension columns, additive measures).
TWINS = {
    "analytics_hourly": (
        "analytics_daily",
        "network, asset, pay_to, resource, method, resource_id",
        ("total", "succeeded", "failed", "pending", "volume", "pending_volume"),
    ),
    "analytics_payers_hourly": ("analytics_payers_daily", "payer, network, asset", ("succeeded", "failed", "volume")),
    "analytics_latency_hourly": ("analytics_latency_daily", "op, bin", ("n",)),
    "analytics_totals_hourly": (
        "analytics_totals_daily",
        "network, asset",
        ("total", "succeeded", "failed", "pending", "volume", "pending_volume"),
    ),
}

# Every hour of the UTC days the window [$2, $3) touches: ``whole`` when its day is read from the daily twin (the
# day's noon is in the window), ``inw`` when the hour is in the window. A day is read whole, then corrected by
# the hours where that differs from the window or its buckets: minus each hour of a whole day outside the window
# or in another bucket than the day's noon, plus each hour in the window that its day's row does not bring.
_HOURS = """SELECT h, d + interval '12 hours' AS anchor, (h >= $2 AND h < $3) AS inw,
           (d + interval '12 hours' >= $2 AND d + interval '12 hours' < $3) AS whole
    FROM generate_series(date_trunc('day', $2::timestamptz, 'UTC'),
                         date_trunc('day', $3::timestamptz - interval '1 hour', 'UTC') + interval '23 hours',
                         interval '1 hour') h
    CROSS JOIN LATERAL (SELECT date_trunc('day', h, 'UTC') AS d) x"""


def split_source(table: str, bucket: str | None = None) -> str:
    """``FROM`` clause text for an hourly rollup with a daily twin: the same columns (``hour``: a moment inside the
    bucket the row counts in; measures signed) for a window of whole UTC hours, reading whole UTC days from the
    twin and only the differing hours from ``table``, plus the pending records.

    ``bucket``: SQL of the bucket of a moment ``{t}`` (time series; None: the window is one bucket). The sums of
    the measures per bucket are exact; a group may sum to zero (callers drop those)."""
    daily, dims, measures = TWINS[table]
    same = "TRUE" if bucket is None else f"{bucket.format(t='h')} = {bucket.format(t='anchor')}"
    signed = ", ".join(f"f.sign * t.{m} AS {m}" for m in measures)
    cols = f"tenant_id, hour, {dims}, {', '.join(measures)}"
    tdims = ", ".join(f"t.{d.strip()}" for d in dims.split(","))
    pending = _SHAPES[table].format(rows=PENDING_ROWS)
    return f"""(WITH hrs AS ({_HOURS}),
    fix AS (SELECT h, h AS at, 1 AS sign FROM hrs WHERE inw AND NOT (whole AND {same})
            UNION ALL SELECT h, anchor, -1 FROM hrs WHERE whole AND NOT (inw AND {same}))
    SELECT tenant_id, day + interval '12 hours' AS hour, {dims}, {", ".join(measures)} FROM {daily}
    WHERE tenant_id = $1 AND day >= $2::timestamptz - interval '12 hours'
      AND day < $3::timestamptz - interval '12 hours'
    UNION ALL
    SELECT t.tenant_id, f.at, {tdims}, {signed} FROM {table} t JOIN fix f ON f.h = t.hour
    WHERE t.tenant_id = $1 AND t.hour = ANY (ARRAY(SELECT h FROM fix))
    UNION ALL
    SELECT {cols} FROM ({pending}) p) s"""
