-- Coarser analytics rollups, so every analytics read touches few rows (migration 0021 has the hourly ones):
-- * analytics_totals_hourly: counts and volume per hour, network and asset (time series, networks);
-- * daily twins (UTC days) of analytics_hourly, analytics_payers_hourly and analytics_latency_hourly: a window or
--   bucket is read as whole days plus, signed, the hours where it differs from whole days
--   (x402/service/analytics/sources.py);
-- * payer sets per UTC hour / day / ISO week with each set's size (analytics_payer_counts), and per day / week the
--   first and last succeeded payment of each payer in it: exact unique payers of any bucket of whole hours made
--   of a suffix of one period and a prefix of the next (x402/service/analytics/uniques.py);
-- * analytics_cohorts: payers per (first-payment week, week paid) -- cohort retention without scanning payers.
-- Folds now run one at a time (a transaction-level advisory lock): set sizes and cohorts depend on what earlier
-- folds inserted. The rows are backfilled from the hourly rollups, under a lock that holds folds off.

CREATE TABLE analytics_totals_hourly (
    tenant_id       uuid,
    hour            timestamptz    NOT NULL,
    network         text           NOT NULL,
    asset           text           NOT NULL,
    total           bigint         NOT NULL,
    succeeded       bigint         NOT NULL,
    failed          bigint         NOT NULL,
    pending         bigint         NOT NULL,
    volume          numeric(78, 0) NOT NULL,
    pending_volume  numeric(78, 0) NOT NULL,
    CONSTRAINT analytics_totals_hourly_key UNIQUE NULLS NOT DISTINCT (tenant_id, hour, network, asset)
);

CREATE TABLE analytics_daily (
    tenant_id       uuid,
    day             timestamptz    NOT NULL,
    network         text           NOT NULL,
    asset           text           NOT NULL,
    pay_to          text           NOT NULL,
    resource        text           NOT NULL,
    method          text           NOT NULL,
    resource_id     uuid,
    total           bigint         NOT NULL,
    succeeded       bigint         NOT NULL,
    failed          bigint         NOT NULL,
    pending         bigint         NOT NULL,
    volume          numeric(78, 0) NOT NULL,
    pending_volume  numeric(78, 0) NOT NULL,
    CONSTRAINT analytics_daily_key
        UNIQUE NULLS NOT DISTINCT (tenant_id, day, network, asset, pay_to, resource, method, resource_id)
);

CREATE TABLE analytics_payers_daily (
    tenant_id   uuid,
    day         timestamptz    NOT NULL,
    payer       text           NOT NULL,
    network     text           NOT NULL,
    asset       text           NOT NULL,
    succeeded   bigint         NOT NULL,
    failed      bigint         NOT NULL,
    volume      numeric(78, 0) NOT NULL,
    CONSTRAINT analytics_payers_daily_key UNIQUE NULLS NOT DISTINCT (tenant_id, day, payer, network, asset)
);

CREATE TABLE analytics_latency_daily (
    tenant_id   uuid,
    day         timestamptz NOT NULL,
    op          text        NOT NULL,
    bin         integer     NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_latency_daily_key UNIQUE NULLS NOT DISTINCT (tenant_id, day, op, bin)
);

-- Payers with a succeeded payment in a UTC hour / day (analytics_payer_weeks, migration 0021, is the week set).
CREATE TABLE analytics_payer_hours (
    tenant_id   uuid,
    hour        timestamptz NOT NULL,
    payer       text        NOT NULL,
    CONSTRAINT analytics_payer_hours_key UNIQUE NULLS NOT DISTINCT (tenant_id, hour, payer)
);
CREATE TABLE analytics_payer_days (
    tenant_id   uuid,
    day         timestamptz NOT NULL,
    payer       text        NOT NULL,
    first_at    timestamptz NOT NULL,   -- first / last succeeded payment of the payer that day
    last_at     timestamptz NOT NULL,
    CONSTRAINT analytics_payer_days_key UNIQUE NULLS NOT DISTINCT (tenant_id, day, payer)
);
CREATE INDEX analytics_payer_days_first ON analytics_payer_days (tenant_id, day, first_at);
CREATE INDEX analytics_payer_days_last ON analytics_payer_days (tenant_id, day, last_at);
ALTER TABLE analytics_payer_weeks ADD COLUMN first_at timestamptz, ADD COLUMN last_at timestamptz;
CREATE INDEX analytics_payer_weeks_first ON analytics_payer_weeks (tenant_id, week, first_at);
CREATE INDEX analytics_payer_weeks_last ON analytics_payer_weeks (tenant_id, week, last_at);
-- the fold looks payers up by name (its joins compare tenants with IS NOT DISTINCT FROM, which no index serves)
CREATE INDEX analytics_payer_weeks_payer ON analytics_payer_weeks (payer, tenant_id, week);
CREATE INDEX analytics_payers_payer ON analytics_payers (payer, tenant_id);

-- Size of each payer set: grain 'hour' (analytics_payer_hours), 'day' (analytics_payer_days), 'week'
-- (analytics_payer_weeks).
CREATE TABLE analytics_payer_counts (
    tenant_id   uuid,
    grain       text        NOT NULL CHECK (grain IN ('hour', 'day', 'week')),
    bucket      timestamptz NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_payer_counts_key UNIQUE NULLS NOT DISTINCT (tenant_id, grain, bucket)
);

-- Payers whose first succeeded payment (any asset) fell in the ISO week (UTC) `cohort` and who paid in `week`.
CREATE TABLE analytics_cohorts (
    tenant_id   uuid,
    cohort      timestamptz NOT NULL,
    week        timestamptz NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_cohorts_key UNIQUE NULLS NOT DISTINCT (tenant_id, cohort, week)
);

-- The upserts that fold the batch (pg_temp.x402_analytics_batch) into the rollups of 0021 and of this migration.
CREATE OR REPLACE FUNCTION x402_analytics_rollup_sql(src text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $f$
SELECT ARRAY[
format($q$
INSERT INTO analytics_hourly AS h (tenant_id, hour, network, asset, pay_to, resource, method, resource_id,
                                   total, succeeded, failed, pending, volume, pending_volume)
SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), network, asset, pay_to, resource, method, resource_id,
       count(*), count(*) FILTER (WHERE o = 'succeeded'), count(*) FILTER (WHERE o = 'failed'),
       count(*) FILTER (WHERE o = 'pending'),
       coalesce(sum(amount) FILTER (WHERE o = 'succeeded'), 0), coalesce(sum(amount) FILTER (WHERE o = 'pending'), 0)
FROM (SELECT *, x402_payment_outcome(kind, status) AS o FROM %1$s) r WHERE o IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT ON CONSTRAINT analytics_hourly_key DO UPDATE SET
    total = h.total + excluded.total, succeeded = h.succeeded + excluded.succeeded,
    failed = h.failed + excluded.failed, pending = h.pending + excluded.pending,
    volume = h.volume + excluded.volume, pending_volume = h.pending_volume + excluded.pending_volume
$q$, src),
format($q$
INSERT INTO analytics_daily AS h (tenant_id, day, network, asset, pay_to, resource, method, resource_id,
                                  total, succeeded, failed, pending, volume, pending_volume)
SELECT tenant_id, date_trunc('day', created_at, 'UTC'), network, asset, pay_to, resource, method, resource_id,
       count(*), count(*) FILTER (WHERE o = 'succeeded'), count(*) FILTER (WHERE o = 'failed'),
       count(*) FILTER (WHERE o = 'pending'),
       coalesce(sum(amount) FILTER (WHERE o = 'succeeded'), 0), coalesce(sum(amount) FILTER (WHERE o = 'pending'), 0)
FROM (SELECT *, x402_payment_outcome(kind, status) AS o FROM %1$s) r WHERE o IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT ON CONSTRAINT analytics_daily_key DO UPDATE SET
    total = h.total + excluded.total, succeeded = h.succeeded + excluded.succeeded,
    failed = h.failed + excluded.failed, pending = h.pending + excluded.pending,
    volume = h.volume + excluded.volume, pending_volume = h.pending_volume + excluded.pending_volume
$q$, src),
format($q$
INSERT INTO analytics_totals_hourly AS h (tenant_id, hour, network, asset,
                                          total, succeeded, failed, pending, volume, pending_volume)
SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), network, asset,
       count(*), count(*) FILTER (WHERE o = 'succeeded'), count(*) FILTER (WHERE o = 'failed'),
       count(*) FILTER (WHERE o = 'pending'),
       coalesce(sum(amount) FILTER (WHERE o = 'succeeded'), 0), coalesce(sum(amount) FILTER (WHERE o = 'pending'), 0)
FROM (SELECT *, x402_payment_outcome(kind, status) AS o FROM %1$s) r WHERE o IS NOT NULL
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT ON CONSTRAINT analytics_totals_hourly_key DO UPDATE SET
    total = h.total + excluded.total, succeeded = h.succeeded + excluded.succeeded,
    failed = h.failed + excluded.failed, pending = h.pending + excluded.pending,
    volume = h.volume + excluded.volume, pending_volume = h.pending_volume + excluded.pending_volume
$q$, src),
format($q$
INSERT INTO analytics_payers_hourly AS h (tenant_id, hour, payer, network, asset, succeeded, failed, volume,
                                          first_at, last_at)
SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), payer, network, asset,
       count(*) FILTER (WHERE o = 'succeeded'), count(*) FILTER (WHERE o = 'failed'),
       coalesce(sum(amount) FILTER (WHERE o = 'succeeded'), 0),
       min(created_at) FILTER (WHERE o = 'succeeded'), max(created_at) FILTER (WHERE o = 'succeeded')
FROM (SELECT *, x402_payment_outcome(kind, status) AS o FROM %1$s) r
WHERE o IN ('succeeded', 'failed') AND payer IS NOT NULL AND payer <> ''
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT ON CONSTRAINT analytics_payers_hourly_key DO UPDATE SET
    succeeded = h.succeeded + excluded.succeeded, failed = h.failed + excluded.failed,
    volume = h.volume + excluded.volume,
    first_at = least(h.first_at, excluded.first_at), last_at = greatest(h.last_at, excluded.last_at)
$q$, src),
format($q$
INSERT INTO analytics_payers_daily AS h (tenant_id, day, payer, network, asset, succeeded, failed, volume)
SELECT tenant_id, date_trunc('day', created_at, 'UTC'), payer, network, asset,
       count(*) FILTER (WHERE o = 'succeeded'), count(*) FILTER (WHERE o = 'failed'),
       coalesce(sum(amount) FILTER (WHERE o = 'succeeded'), 0)
FROM (SELECT *, x402_payment_outcome(kind, status) AS o FROM %1$s) r
WHERE o IN ('succeeded', 'failed') AND payer IS NOT NULL AND payer <> ''
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT ON CONSTRAINT analytics_payers_daily_key DO UPDATE SET
    succeeded = h.succeeded + excluded.succeeded, failed = h.failed + excluded.failed,
    volume = h.volume + excluded.volume
$q$, src),
-- cohorts first (they compare the payers' first payments before and after this batch), then the lifetimes
format($q$
WITH ok AS (
    SELECT tenant_id, payer, date_trunc('week', created_at, 'UTC') AS week, min(created_at) AS first_at
    FROM %1$s WHERE x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
    GROUP BY 1, 2, 3
), who AS (
    SELECT o.tenant_id, o.payer, min(o.first_at) AS batch_first,
           (SELECT min(p.first_at) FROM analytics_payers p WHERE p.tenant_id IS NOT DISTINCT FROM o.tenant_id
              AND p.payer = o.payer) AS old_first
    FROM ok o GROUP BY 1, 2
), cohort AS (
    SELECT tenant_id, payer, date_trunc('week', old_first, 'UTC') AS old_c,
           date_trunc('week', least(old_first, batch_first), 'UTC') AS new_c
    FROM who
), old_weeks AS (  -- weeks the payer had paid in before this batch
    SELECT c.tenant_id, c.payer, c.old_c, c.new_c, w.week FROM cohort c
    JOIN analytics_payer_weeks w ON w.tenant_id IS NOT DISTINCT FROM c.tenant_id AND w.payer = c.payer
    WHERE c.old_c IS NOT NULL
), new_weeks AS (  -- weeks first paid in by this batch
    SELECT DISTINCT o.tenant_id, o.payer, o.week, c.new_c FROM ok o
    JOIN cohort c ON c.tenant_id IS NOT DISTINCT FROM o.tenant_id AND c.payer = o.payer
    WHERE NOT EXISTS (SELECT 1 FROM analytics_payer_weeks w WHERE w.tenant_id IS NOT DISTINCT FROM o.tenant_id
                        AND w.week = o.week AND w.payer = o.payer)
), delta AS (
    SELECT tenant_id, old_c AS cohort, week, -1 AS n FROM old_weeks WHERE old_c <> new_c
    UNION ALL SELECT tenant_id, new_c, week, 1 FROM old_weeks WHERE old_c <> new_c
    UNION ALL SELECT tenant_id, new_c, week, 1 FROM new_weeks
)
INSERT INTO analytics_cohorts AS h (tenant_id, cohort, week, n)
SELECT tenant_id, cohort, week, sum(n) FROM delta GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
ON CONFLICT ON CONSTRAINT analytics_cohorts_key DO UPDATE SET n = h.n + excluded.n
$q$, src),
format($q$
INSERT INTO analytics_payers AS h (tenant_id, payer, network, asset, succeeded, volume, first_at, last_at)
SELECT tenant_id, payer, network, asset, count(*), sum(amount), min(created_at), max(created_at)
FROM %1$s WHERE x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT ON CONSTRAINT analytics_payers_key DO UPDATE SET
    succeeded = h.succeeded + excluded.succeeded, volume = h.volume + excluded.volume,
    first_at = least(h.first_at, excluded.first_at), last_at = greatest(h.last_at, excluded.last_at)
$q$, src),
format($q$
WITH ins AS (
    INSERT INTO analytics_payer_weeks AS h (tenant_id, week, payer, succeeded, first_at, last_at)
    SELECT tenant_id, date_trunc('week', created_at, 'UTC'), payer, count(*), min(created_at), max(created_at)
    FROM %1$s WHERE x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT analytics_payer_weeks_key DO UPDATE SET succeeded = h.succeeded + excluded.succeeded,
        first_at = least(h.first_at, excluded.first_at), last_at = greatest(h.last_at, excluded.last_at)
    RETURNING h.tenant_id, h.week, h.xmax = 0 AS added
)
INSERT INTO analytics_payer_counts AS c (tenant_id, grain, bucket, n)
SELECT tenant_id, 'week', week, count(*) FROM ins WHERE added GROUP BY 1, 3 ORDER BY 1, 3
ON CONFLICT ON CONSTRAINT analytics_payer_counts_key DO UPDATE SET n = c.n + excluded.n
$q$, src),
format($q$
WITH ins AS (
    INSERT INTO analytics_payer_days AS h (tenant_id, day, payer, first_at, last_at)
    SELECT tenant_id, date_trunc('day', created_at, 'UTC'), payer, min(created_at), max(created_at)
    FROM %1$s WHERE x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT analytics_payer_days_key DO UPDATE SET
        first_at = least(h.first_at, excluded.first_at), last_at = greatest(h.last_at, excluded.last_at)
    RETURNING h.tenant_id, h.day, h.xmax = 0 AS added
)
INSERT INTO analytics_payer_counts AS c (tenant_id, grain, bucket, n)
SELECT tenant_id, 'day', day, count(*) FROM ins WHERE added GROUP BY 1, 3 ORDER BY 1, 3
ON CONFLICT ON CONSTRAINT analytics_payer_counts_key DO UPDATE SET n = c.n + excluded.n
$q$, src),
format($q$
WITH ins AS (
    INSERT INTO analytics_payer_hours AS h (tenant_id, hour, payer)
    SELECT DISTINCT tenant_id, date_trunc('hour', created_at, 'UTC'), payer
    FROM %1$s WHERE x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
    ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT analytics_payer_hours_key DO NOTHING
    RETURNING h.tenant_id, h.hour
)
INSERT INTO analytics_payer_counts AS c (tenant_id, grain, bucket, n)
SELECT tenant_id, 'hour', hour, count(*) FROM ins GROUP BY 1, 3 ORDER BY 1, 3
ON CONFLICT ON CONSTRAINT analytics_payer_counts_key DO UPDATE SET n = c.n + excluded.n
$q$, src),
format($q$
INSERT INTO analytics_latency_hourly AS h (tenant_id, hour, op, bin, n)
SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), CASE WHEN kind = 'settle' THEN 'settle' ELSE 'verify' END,
       x402_latency_bin(latency_ms), count(*)
FROM %1$s WHERE latency_ms IS NOT NULL
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT ON CONSTRAINT analytics_latency_hourly_key DO UPDATE SET n = h.n + excluded.n
$q$, src),
format($q$
INSERT INTO analytics_latency_daily AS h (tenant_id, day, op, bin, n)
SELECT tenant_id, date_trunc('day', created_at, 'UTC'), CASE WHEN kind = 'settle' THEN 'settle' ELSE 'verify' END,
       x402_latency_bin(latency_ms), count(*)
FROM %1$s WHERE latency_ms IS NOT NULL
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT ON CONSTRAINT analytics_latency_daily_key DO UPDATE SET n = h.n + excluded.n
$q$, src),
format($q$
INSERT INTO analytics_failures_hourly AS h (tenant_id, hour, kind, reason, network, n)
SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), kind, coalesce(reason, ''), network, count(*)
FROM %1$s WHERE x402_payment_outcome(kind, status) = 'failed'
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT ON CONSTRAINT analytics_failures_hourly_key DO UPDATE SET n = h.n + excluded.n
$q$, src),
format($q$
INSERT INTO analytics_risk_hourly AS h (tenant_id, hour, kind, risk, level, flag, n)
SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), kind, risk, coalesce(risk_level, ''), f.flag, count(*)
FROM %1$s r CROSS JOIN LATERAL (SELECT '' AS flag UNION ALL SELECT DISTINCT unnest(string_to_array(nullif(r.risk_flags, ''), ','))) f
WHERE risk IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT ON CONSTRAINT analytics_risk_hourly_key DO UPDATE SET n = h.n + excluded.n
$q$, src)
]
$f$;

-- Fold up to max_rows pending records into the rollups; returns how many were folded. One fold at a time.
CREATE OR REPLACE FUNCTION x402_analytics_fold(max_rows integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    q text;
    n integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('x402_analytics_fold'));
    CREATE TEMP TABLE x402_analytics_batch (LIKE analytics_pending) ON COMMIT DROP;
    WITH picked AS (
        SELECT ctid FROM analytics_pending LIMIT max_rows FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM analytics_pending p USING picked WHERE p.ctid = picked.ctid RETURNING p.*
    )
    INSERT INTO x402_analytics_batch SELECT * FROM moved;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        ANALYZE pg_temp.x402_analytics_batch;
        FOREACH q IN ARRAY x402_analytics_rollup_sql('pg_temp.x402_analytics_batch') LOOP
            EXECUTE q;
        END LOOP;
    END IF;
    DROP TABLE pg_temp.x402_analytics_batch;
    RETURN n;
END
$$;

-- Backfill from the hourly rollups (records still pending are folded into every rollup later). The lock keeps
-- folds of the old function (other service processes) out until this commits.
LOCK TABLE analytics_hourly, analytics_payers_hourly, analytics_latency_hourly, analytics_payer_weeks,
    analytics_payers IN SHARE MODE;

INSERT INTO analytics_totals_hourly
SELECT tenant_id, hour, network, asset, sum(total), sum(succeeded), sum(failed), sum(pending), sum(volume),
       sum(pending_volume)
FROM analytics_hourly GROUP BY 1, 2, 3, 4;

INSERT INTO analytics_daily
SELECT tenant_id, date_trunc('day', hour, 'UTC'), network, asset, pay_to, resource, method, resource_id, sum(total),
       sum(succeeded), sum(failed), sum(pending), sum(volume), sum(pending_volume)
FROM analytics_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

INSERT INTO analytics_payers_daily
SELECT tenant_id, date_trunc('day', hour, 'UTC'), payer, network, asset, sum(succeeded), sum(failed), sum(volume)
FROM analytics_payers_hourly GROUP BY 1, 2, 3, 4, 5;

INSERT INTO analytics_latency_daily
SELECT tenant_id, date_trunc('day', hour, 'UTC'), op, bin, sum(n) FROM analytics_latency_hourly GROUP BY 1, 2, 3, 4;

INSERT INTO analytics_payer_hours
SELECT DISTINCT tenant_id, hour, payer FROM analytics_payers_hourly WHERE succeeded > 0;

INSERT INTO analytics_payer_days
SELECT tenant_id, date_trunc('day', hour, 'UTC'), payer, min(first_at), max(last_at)
FROM analytics_payers_hourly WHERE succeeded > 0 GROUP BY 1, 2, 3;

UPDATE analytics_payer_weeks w SET first_at = s.first_at, last_at = s.last_at
FROM (SELECT tenant_id, date_trunc('week', hour, 'UTC') AS week, payer, min(first_at) AS first_at,
             max(last_at) AS last_at
      FROM analytics_payers_hourly WHERE succeeded > 0 GROUP BY 1, 2, 3) s
WHERE w.tenant_id IS NOT DISTINCT FROM s.tenant_id AND w.week = s.week AND w.payer = s.payer;

INSERT INTO analytics_payer_counts
SELECT tenant_id, 'hour', hour, count(*) FROM analytics_payer_hours GROUP BY 1, 3
UNION ALL SELECT tenant_id, 'day', day, count(*) FROM analytics_payer_days GROUP BY 1, 3
UNION ALL SELECT tenant_id, 'week', week, count(*) FROM analytics_payer_weeks GROUP BY 1, 3;

INSERT INTO analytics_cohorts
SELECT w.tenant_id, f.cohort, w.week, count(*)
FROM analytics_payer_weeks w
JOIN (SELECT tenant_id, payer, date_trunc('week', min(first_at), 'UTC') AS cohort FROM analytics_payers
      GROUP BY 1, 2) f ON f.tenant_id IS NOT DISTINCT FROM w.tenant_id AND f.payer = w.payer
GROUP BY 1, 2, 3;
