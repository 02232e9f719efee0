"""The relations analytics queries read: the hourly rollups (migration 0021), or the same shape computed from the
raw payment records (for windows the rollups cannot bucket exactly, and as the benchmark's baseline).

Every query takes $1 tenant, $2 window start, $3 window end, $4 time zone, $5 bucket unit. A raw source puts each
record in its bucket directly (``hour`` = the bucket start), so ``date_trunc($5, hour, $4)`` of the outer query is
the same for both sources.
"""

from __future__ import annotations

_RAW = """(SELECT tenant_id, date_trunc($5, created_at, $4) AS hour, network, asset, pay_to, resource, method,
        resource_id, kind, reason, payer, amount, created_at, latency_ms, risk, risk_level, risk_flags,
        x402_payment_outcome(kind, status) AS o
      FROM payments WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3)"""

RAW_SOURCES = {
    "analytics_hourly": f"""(SELECT tenant_id, hour, network, asset, pay_to, resource, method, resource_id,
        1 AS total, (o = 'succeeded')::int AS succeeded, (o = 'failed')::int AS failed,
        (o = 'pending')::int AS pending, CASE WHEN o = 'succeeded' THEN amount ELSE 0 END AS volume,
        CASE WHEN o = 'pending' THEN amount ELSE 0 END AS pending_volume
      FROM {_RAW} r WHERE o IS NOT NULL)""",
    "analytics_payers_hourly": f"""(SELECT tenant_id, hour, payer, network, asset,
        (o = 'succeeded')::int AS succeeded, (o = 'failed')::int AS failed,
        CASE WHEN o = 'succeeded' THEN amount ELSE 0 END AS volume,
        CASE WHEN o = 'succeeded' THEN created_at END AS first_at,
        CASE WHEN o = 'succeeded' THEN created_at END AS last_at
      FROM {_RAW} r WHERE o IN ('succeeded', 'failed') AND payer IS NOT NULL AND payer <> '')""",
    "analytics_latency_hourly": f"""(SELECT tenant_id, hour,
        CASE WHEN kind = 'settle' THEN 'settle' ELSE 'verify' END AS op, x402_latency_bin(latency_ms) AS bin, 1 AS n
      FROM {_RAW} r WHERE latency_ms IS NOT NULL)""",
    "analytics_failures_hourly": f"""(SELECT tenant_id, hour, kind, coalesce(reason, '') AS reason, network, 1 AS n
      FROM {_RAW} r WHERE o = 'failed')""",
    "analytics_risk_hourly": f"""(SELECT tenant_id, hour, kind, risk, coalesce(risk_level, '') AS level, f.flag, 1 AS n
      FROM {_RAW} r CROSS JOIN LATERAL
        (SELECT '' AS flag UNION ALL SELECT DISTINCT unnest(string_to_array(nullif(r.risk_flags, ''), ','))) f
      WHERE risk IS NOT NULL)""",
}


def source(table: str, *, raw: bool) -> str:
    """``FROM`` clause text for a rollup: the table filtered to the window, or its raw equivalent."""
    if raw:
        return f"{RAW_SOURCES[table]} s"
    return f"(SELECT * FROM {table} WHERE tenant_id = $1 AND hour >= $2 AND hour < $3) s"
