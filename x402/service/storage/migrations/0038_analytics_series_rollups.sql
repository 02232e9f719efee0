-- Derived rollups for the time series (x402/service/analytics/timeseries.py, latency.py, uniques.py), so a series
-- of local days or hours in any whole-hour time zone reads a few rows per bucket:
-- * analytics_latency_day_cdf: per UTC day and operation, the latency histogram of analytics_latency_daily as one
--   row of cumulative counts (bins ascending, cum[i] = records with bin <= bins[i]); hours are read from
--   analytics_latency_hourly as the same rows: a bucket's nearest-rank percentile is found by binary search over a
--   few signed rows (whole days plus or minus edge hours), the same figure the histogram rows give;
-- * analytics_payer_period_hours: per payer and UTC day (a row of analytics_payer_days) the hours (since the
--   period's start) of its first and last succeeded payment (grain 'day'; the function takes the grain, weeks are
--   not kept: their buckets read the payer sets, which cost the fold less); from it
--   analytics_payer_edges: per period, how many payers paid first / last in each hour, and
--   analytics_payer_pairs: per period Q, payers of both P (the period before) and Q by (last hour in P, first hour
--   in Q): the payers of a bucket [P + a hours, Q + b hours) are |last hour >= a in P| + |first hour < b in Q|
--   - |pairs with last >= a and first < b| (x402/service/analytics/uniques.py);
-- * analytics_totals_daily: analytics_totals_hourly per UTC day (split reads: whole days plus edge hours).
-- All are kept by statement-level triggers on the rollups the fold writes (the fold itself is unchanged): the
-- histogram rows are recomputed from the rollup rows a statement touched; the payer tables and the daily totals
-- take deltas (the payer deltas against analytics_payer_period_hours, which each trigger call updates last, so the
-- INSERT and the UPDATE half of one upsert compose). Folds run one at a time (migration 0036's advisory lock), so
-- each change is applied exactly once. Backfilled from the rollups under a lock that holds folds off.

CREATE TABLE analytics_latency_day_cdf (
    tenant_id   uuid,
    day         timestamptz NOT NULL,
    op          text        NOT NULL,
    bins        integer[]   NOT NULL,
    cum         bigint[]    NOT NULL,
    CONSTRAINT analytics_latency_day_cdf_key UNIQUE NULLS NOT DISTINCT (tenant_id, day, op)
);

CREATE TABLE analytics_payer_period_hours (
    tenant_id   uuid,
    grain       text        NOT NULL CHECK (grain IN ('day', 'week')),
    period      timestamptz NOT NULL,
    payer       text        NOT NULL,
    first_hour  smallint    NOT NULL,   -- hours since the period's start
    last_hour   smallint    NOT NULL,
    -- looked up by payer and period (a tenant compared with IS NOT DISTINCT FROM cannot lead an index lookup)
    CONSTRAINT analytics_payer_period_hours_key UNIQUE NULLS NOT DISTINCT (payer, grain, period, tenant_id)
);
CREATE TABLE analytics_payer_edges (
    tenant_id   uuid,
    grain       text        NOT NULL,
    period      timestamptz NOT NULL,
    edge        text        NOT NULL CHECK (edge IN ('first', 'last')),
    hour        smallint    NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_payer_edges_key UNIQUE NULLS NOT DISTINCT (tenant_id, grain, period, edge, hour)
);
CREATE TABLE analytics_payer_pairs (
    tenant_id   uuid,
    grain       text        NOT NULL,
    period      timestamptz NOT NULL,   -- Q: the later of the two periods
    last_hour   smallint    NOT NULL,   -- of the payer's last succeeded payment in the period before Q
    first_hour  smallint    NOT NULL,   -- of its first in Q
    n           bigint      NOT NULL,
    CONSTRAINT analytics_payer_pairs_key UNIQUE NULLS NOT DISTINCT (tenant_id, grain, period, last_hour, first_hour)
);
CREATE INDEX analytics_payer_pairs_first ON analytics_payer_pairs (tenant_id, grain, period, first_hour);

CREATE TABLE analytics_totals_daily (
    tenant_id       uuid,
    day             timestamptz    NOT NULL,
    network         text           NOT NULL,
    asset           text           NOT NULL,
    total           bigint         NOT NULL,
    succeeded       bigint         NOT NULL,
    failed          bigint         NOT NULL,
    pending         bigint         NOT NULL,
    volume          numeric(78, 0) NOT NULL,
    pending_volume  numeric(78, 0) NOT NULL,
    CONSTRAINT analytics_totals_daily_key UNIQUE NULLS NOT DISTINCT (tenant_id, day, network, asset)
);

-- The cumulative rows of the (tenant, hour / day, op) keys in `keys`, recomputed from the histogram `src`.
CREATE FUNCTION x402_latency_cdf_sql(src text, dst text, col text, keys text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
INSERT INTO %2$s AS c (tenant_id, %3$s, op, bins, cum)
SELECT tenant_id, %3$s, op, array_agg(bin ORDER BY bin), array_agg(cum ORDER BY bin)
FROM (SELECT h.tenant_id, h.%3$s, h.op, h.bin,
             sum(h.n) OVER (PARTITION BY h.tenant_id, h.%3$s, h.op ORDER BY h.bin) AS cum
      FROM (SELECT DISTINCT tenant_id, %3$s, op FROM %4$s kk) k
      JOIN %1$s h ON h.tenant_id = k.tenant_id AND h.%3$s = k.%3$s AND h.op = k.op
      WHERE h.n <> 0
      UNION ALL
      SELECT h.tenant_id, h.%3$s, h.op, h.bin,
             sum(h.n) OVER (PARTITION BY h.%3$s, h.op ORDER BY h.bin) AS cum
      FROM (SELECT DISTINCT %3$s, op FROM %4$s kk WHERE tenant_id IS NULL) k
      JOIN %1$s h ON h.tenant_id IS NULL AND h.%3$s = k.%3$s AND h.op = k.op
      WHERE h.n <> 0) s
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT ON CONSTRAINT %2$s_key DO UPDATE SET bins = excluded.bins, cum = excluded.cum
$q$, src, dst, col, keys)
$f$;

CREATE FUNCTION x402_latency_day_cdf_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE x402_latency_cdf_sql('analytics_latency_daily', 'analytics_latency_day_cdf', 'day', 'changed');
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_latency_day_cdf_ins AFTER INSERT ON analytics_latency_daily
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION x402_latency_day_cdf_sync();
CREATE TRIGGER analytics_latency_day_cdf_upd AFTER UPDATE ON analytics_latency_daily
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION x402_latency_day_cdf_sync();

-- Payer-period rows written by one statement (`changed`, the rows as they are now; arguments: grain, period
-- column, period length): the deltas of the edge and pair counts between analytics_payer_period_hours (the state
-- before) and that state with the changed rows laid over it, then the changed rows into
-- analytics_payer_period_hours.
CREATE FUNCTION x402_payer_hours_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    len interval := TG_ARGV[2]::interval;
BEGIN
    EXECUTE format($q$
        CREATE TEMP TABLE x402_payer_changed ON COMMIT DROP AS
        SELECT tenant_id, %1$L::text AS grain, %2$I AS period, payer,
               floor(extract(epoch FROM first_at - %2$I) / 3600)::smallint AS fh,
               floor(extract(epoch FROM last_at - %2$I) / 3600)::smallint AS lh
        FROM changed WHERE first_at IS NOT NULL AND last_at IS NOT NULL
    $q$, TG_ARGV[0], TG_ARGV[1]);
    -- one index lookup per changed row (a hash of the whole table costs more)
    CREATE TEMP TABLE x402_payer_before ON COMMIT DROP AS
    SELECT c.tenant_id, c.grain, c.period, c.payer, m.fh, m.lh
    FROM x402_payer_changed c
    CROSS JOIN LATERAL (SELECT m.first_hour AS fh, m.last_hour AS lh FROM analytics_payer_period_hours m
                        WHERE m.payer = c.payer AND m.grain = c.grain AND m.period = c.period
                          AND m.tenant_id IS NOT DISTINCT FROM c.tenant_id LIMIT 1) m;
    ANALYZE pg_temp.x402_payer_changed;
    ANALYZE pg_temp.x402_payer_before;

    INSERT INTO analytics_payer_edges AS e (tenant_id, grain, period, edge, hour, n)
    SELECT tenant_id, grain, period, edge, hour, sum(n) FROM (
        SELECT tenant_id, grain, period, 'first' AS edge, fh AS hour, 1 AS n FROM pg_temp.x402_payer_changed
        UNION ALL SELECT tenant_id, grain, period, 'last', lh, 1 FROM pg_temp.x402_payer_changed
        UNION ALL SELECT tenant_id, grain, period, 'first', fh, -1 FROM pg_temp.x402_payer_before
        UNION ALL SELECT tenant_id, grain, period, 'last', lh, -1 FROM pg_temp.x402_payer_before
    ) d GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT analytics_payer_edges_key DO UPDATE SET n = e.n + excluded.n;

    -- pairs (Q - len, Q) with a changed side: before from the mirror, after with the changed rows laid over it
    INSERT INTO analytics_payer_pairs AS p (tenant_id, grain, period, last_hour, first_hour, n)
    SELECT x.tenant_id, x.grain, x.q, d.l, d.f, sum(d.n) FROM (
        SELECT k.tenant_id, k.grain, k.q, coalesce(cp.lh, mp.last_hour) AS al, coalesce(cq.fh, mq.first_hour) AS af,
               (cp.lh IS NOT NULL OR mp.last_hour IS NOT NULL) AND (cq.fh IS NOT NULL OR mq.first_hour IS NOT NULL)
                   AS after_both,
               mp.last_hour AS bl, mq.first_hour AS bf
        FROM (SELECT DISTINCT tenant_id, grain, q, payer FROM (
                  SELECT tenant_id, grain, period AS q, payer FROM pg_temp.x402_payer_changed
                  UNION ALL SELECT tenant_id, grain, period + len, payer FROM pg_temp.x402_payer_changed
              ) k0) k
        LEFT JOIN analytics_payer_period_hours mp ON mp.payer = k.payer AND mp.grain = k.grain
             AND mp.period = k.q - len AND mp.tenant_id IS NOT DISTINCT FROM k.tenant_id
        LEFT JOIN analytics_payer_period_hours mq ON mq.payer = k.payer AND mq.grain = k.grain
             AND mq.period = k.q AND mq.tenant_id IS NOT DISTINCT FROM k.tenant_id
        LEFT JOIN pg_temp.x402_payer_changed cp ON cp.payer = k.payer AND cp.period = k.q - len
             AND cp.tenant_id IS NOT DISTINCT FROM k.tenant_id
        LEFT JOIN pg_temp.x402_payer_changed cq ON cq.payer = k.payer AND cq.period = k.q
             AND cq.tenant_id IS NOT DISTINCT FROM k.tenant_id
    ) x
    CROSS JOIN LATERAL (SELECT x.al, x.af, 1 WHERE x.after_both
                        UNION ALL SELECT x.bl, x.bf, -1 WHERE x.bl IS NOT NULL AND x.bf IS NOT NULL) AS d(l, f, n)
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(d.n) <> 0 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT analytics_payer_pairs_key DO UPDATE SET n = p.n + excluded.n;

    INSERT INTO analytics_payer_period_hours AS m (tenant_id, grain, period, payer, first_hour, last_hour)
    SELECT tenant_id, grain, period, payer, fh, lh FROM pg_temp.x402_payer_changed
    ORDER BY payer, grain, period, tenant_id
    ON CONFLICT ON CONSTRAINT analytics_payer_period_hours_key DO UPDATE SET
        first_hour = excluded.first_hour, last_hour = excluded.last_hour;

    DROP TABLE pg_temp.x402_payer_changed, pg_temp.x402_payer_before;
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_payer_day_hours_ins AFTER INSERT ON analytics_payer_days
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION x402_payer_hours_sync('day', 'day', '24 hours');
CREATE TRIGGER analytics_payer_day_hours_upd AFTER UPDATE ON analytics_payer_days
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION x402_payer_hours_sync('day', 'day', '24 hours');

-- Daily totals: + the inserted rows; + the new and - the old version of updated rows.
CREATE FUNCTION x402_totals_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_totals_daily AS d (tenant_id, day, network, asset, total, succeeded, failed, pending,
                                             volume, pending_volume)
    SELECT tenant_id, date_trunc('day', hour, 'UTC'), network, asset, sum(total), sum(succeeded), sum(failed),
           sum(pending), sum(volume), sum(pending_volume)
    FROM changed GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT analytics_totals_daily_key DO UPDATE SET
        total = d.total + excluded.total, succeeded = d.succeeded + excluded.succeeded,
        failed = d.failed + excluded.failed, pending = d.pending + excluded.pending,
        volume = d.volume + excluded.volume, pending_volume = d.pending_volume + excluded.pending_volume;
    RETURN NULL;
END
$$;
CREATE FUNCTION x402_totals_daily_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_totals_daily AS d (tenant_id, day, network, asset, total, succeeded, failed, pending,
                                             volume, pending_volume)
    SELECT tenant_id, date_trunc('day', hour, 'UTC'), network, asset, sum(s * total), sum(s * succeeded),
           sum(s * failed), sum(s * pending), sum(s * volume), sum(s * pending_volume)
    FROM (SELECT 1 AS s, * FROM changed UNION ALL SELECT -1, * FROM before) c
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT analytics_totals_daily_key DO UPDATE SET
        total = d.total + excluded.total, succeeded = d.succeeded + excluded.succeeded,
        failed = d.failed + excluded.failed, pending = d.pending + excluded.pending,
        volume = d.volume + excluded.volume, pending_volume = d.pending_volume + excluded.pending_volume;
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_totals_daily_ins AFTER INSERT ON analytics_totals_hourly
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION x402_totals_daily_add();
CREATE TRIGGER analytics_totals_daily_upd AFTER UPDATE ON analytics_totals_hourly
    REFERENCING OLD TABLE AS before NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION x402_totals_daily_change();

-- Backfill from the rollups; the lock holds folds (which write these tables) off until this commits.
LOCK TABLE analytics_latency_daily, analytics_payer_days, analytics_totals_hourly IN SHARE MODE;

DO $$
BEGIN
    EXECUTE x402_latency_cdf_sql('analytics_latency_daily', 'analytics_latency_day_cdf', 'day',
                                 '(SELECT DISTINCT tenant_id, day, op FROM analytics_latency_daily)');
END
$$;

INSERT INTO analytics_payer_period_hours (tenant_id, grain, period, payer, first_hour, last_hour)
SELECT tenant_id, 'day', day, payer, floor(extract(epoch FROM first_at - day) / 3600)::smallint,
       floor(extract(epoch FROM last_at - day) / 3600)::smallint
FROM analytics_payer_days;

INSERT INTO analytics_payer_edges (tenant_id, grain, period, edge, hour, n)
SELECT tenant_id, grain, period, 'first', first_hour, count(*) FROM analytics_payer_period_hours GROUP BY 1, 2, 3, 5
UNION ALL
SELECT tenant_id, grain, period, 'last', last_hour, count(*) FROM analytics_payer_period_hours GROUP BY 1, 2, 3, 5;

INSERT INTO analytics_payer_pairs (tenant_id, grain, period, last_hour, first_hour, n)
SELECT q.tenant_id, q.grain, q.period, p.last_hour, q.first_hour, count(*)
FROM analytics_payer_period_hours q
JOIN analytics_payer_period_hours p ON p.payer = q.payer AND p.grain = q.grain
 AND p.period = q.period - CASE q.grain WHEN 'day' THEN interval '24 hours' ELSE interval '168 hours' END
 AND p.tenant_id IS NOT DISTINCT FROM q.tenant_id
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO analytics_totals_daily
SELECT tenant_id, date_trunc('day', hour, 'UTC'), network, asset, sum(total), sum(succeeded), sum(failed),
       sum(pending), sum(volume), sum(pending_volume)
FROM analytics_totals_hourly GROUP BY 1, 2, 3, 4;

ANALYZE analytics_latency_day_cdf, analytics_payer_period_hours, analytics_payer_edges,
    analytics_payer_pairs, analytics_totals_daily;
