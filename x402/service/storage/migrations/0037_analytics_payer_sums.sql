-- Coarser per-payer rollups for the payers and networks breakdowns (x402/service/analytics/payersums.py): the same
-- measures as analytics_payers_hourly / analytics_payers_daily per payer, network and asset, over a UTC calendar
-- month and over the whole life of the tenant. A window is read as a signed sum of buckets of these grains and of
-- days and hours (a long window as the lifetime minus what lies outside it), so a read of a month-long or longer
-- window touches about as many rows as the window has payers instead of one row per payer and day. (ISO weeks
-- would serve one- to two-week windows better, but a fourth upsert per fold costs more than they save.)
-- The fold (x402_analytics_fold, one at a time under its advisory lock) adds each batch to these tables in the
-- same transaction as the other rollups. Most of a fold's rows update existing ones: the tables leave room in their
-- pages for the new versions to stay on the page (HOT updates: no index holds a measure column). The rows are
-- backfilled from analytics_payers_daily under a lock that holds folds off.

CREATE TABLE analytics_payers_monthly (
    tenant_id   uuid,
    month       timestamptz    NOT NULL,
    payer       text           NOT NULL,
    network     text           NOT NULL,
    asset       text           NOT NULL,
    succeeded   bigint         NOT NULL,
    failed      bigint         NOT NULL,
    volume      numeric(78, 0) NOT NULL,
    CONSTRAINT analytics_payers_monthly_key UNIQUE NULLS NOT DISTINCT (tenant_id, month, payer, network, asset)
) WITH (fillfactor = 80);

-- unlike analytics_payers (succeeded payments only), failed payments count here too
CREATE TABLE analytics_payers_total (
    tenant_id   uuid,
    payer       text           NOT NULL,
    network     text           NOT NULL,
    asset       text           NOT NULL,
    succeeded   bigint         NOT NULL,
    failed      bigint         NOT NULL,
    volume      numeric(78, 0) NOT NULL,
    CONSTRAINT analytics_payers_total_key UNIQUE NULLS NOT DISTINCT (tenant_id, payer, network, asset)
) WITH (fillfactor = 80);

-- Groups (payer, network, asset) with a succeeded payment per network and asset in a month (grain 'month') or in
-- the lifetime (grain 'total', bucket -infinity): the unique payers of the biggest bucket a window is read from.
CREATE TABLE analytics_payer_asset_counts (
    tenant_id   uuid,
    grain       text        NOT NULL CHECK (grain IN ('month', 'total')),
    bucket      timestamptz NOT NULL,
    network     text        NOT NULL,
    asset       text        NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_payer_asset_counts_key UNIQUE NULLS NOT DISTINCT (tenant_id, grain, bucket, network, asset)
);

-- The upserts that fold the batch (pg_temp.x402_analytics_batch) into the tables above: each adds the batch's
-- groups, then counts the groups whose succeeded count was 0 before (it now equals the batch's own).
CREATE OR REPLACE FUNCTION x402_analytics_payer_sums_sql(src text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $f$
SELECT ARRAY[
format($q$
WITH b AS (
    SELECT tenant_id, date_trunc('month', created_at, 'UTC') AS month, payer, network, asset,
           count(*) FILTER (WHERE o = 'succeeded') AS succeeded, count(*) FILTER (WHERE o = 'failed') AS failed,
           coalesce(sum(amount) FILTER (WHERE o = 'succeeded'), 0) AS volume
    FROM (SELECT *, x402_payment_outcome(kind, status) AS o FROM %1$s) r
    WHERE o IN ('succeeded', 'failed') AND payer IS NOT NULL AND payer <> ''
    GROUP BY 1, 2, 3, 4, 5
), up AS (
    INSERT INTO analytics_payers_monthly AS h (tenant_id, month, payer, network, asset, succeeded, failed, volume)
    SELECT * FROM b ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT analytics_payers_monthly_key DO UPDATE SET
        succeeded = h.succeeded + excluded.succeeded, failed = h.failed + excluded.failed,
        volume = h.volume + excluded.volume
    RETURNING h.tenant_id, h.month, h.payer, h.network, h.asset, h.succeeded
)
INSERT INTO analytics_payer_asset_counts AS c (tenant_id, grain, bucket, network, asset, n)
SELECT up.tenant_id, 'month', up.month, up.network, up.asset, count(*)
FROM up JOIN b ON coalesce(b.tenant_id, '00000000-0000-0000-0000-000000000000')
                  = coalesce(up.tenant_id, '00000000-0000-0000-0000-000000000000')
              AND b.month = up.month AND b.payer = up.payer AND b.network = up.network AND b.asset = up.asset
WHERE b.succeeded > 0 AND up.succeeded = b.succeeded
GROUP BY 1, 3, 4, 5 ORDER BY 1, 3, 4, 5
ON CONFLICT ON CONSTRAINT analytics_payer_asset_counts_key DO UPDATE SET n = c.n + excluded.n
$q$, src),
format($q$
WITH b AS (
    SELECT tenant_id, payer, network, asset,
           count(*) FILTER (WHERE o = 'succeeded') AS succeeded, count(*) FILTER (WHERE o = 'failed') AS failed,
           coalesce(sum(amount) FILTER (WHERE o = 'succeeded'), 0) AS volume
    FROM (SELECT *, x402_payment_outcome(kind, status) AS o FROM %1$s) r
    WHERE o IN ('succeeded', 'failed') AND payer IS NOT NULL AND payer <> ''
    GROUP BY 1, 2, 3, 4
), up AS (
    INSERT INTO analytics_payers_total AS h (tenant_id, payer, network, asset, succeeded, failed, volume)
    SELECT * FROM b ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT analytics_payers_total_key DO UPDATE SET
        succeeded = h.succeeded + excluded.succeeded, failed = h.failed + excluded.failed,
        volume = h.volume + excluded.volume
    RETURNING h.tenant_id, h.payer, h.network, h.asset, h.succeeded
)
INSERT INTO analytics_payer_asset_counts AS c (tenant_id, grain, bucket, network, asset, n)
SELECT up.tenant_id, 'total', '-infinity', up.network, up.asset, count(*)
FROM up JOIN b ON coalesce(b.tenant_id, '00000000-0000-0000-0000-000000000000')
                  = coalesce(up.tenant_id, '00000000-0000-0000-0000-000000000000')
              AND b.payer = up.payer AND b.network = up.network AND b.asset = up.asset
WHERE b.succeeded > 0 AND up.succeeded = b.succeeded
GROUP BY 1, 4, 5 ORDER BY 1, 4, 5
ON CONFLICT ON CONSTRAINT analytics_payer_asset_counts_key DO UPDATE SET n = c.n + excluded.n
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
        FOREACH q IN ARRAY x402_analytics_rollup_sql('pg_temp.x402_analytics_batch')
                           || x402_analytics_payer_sums_sql('pg_temp.x402_analytics_batch') LOOP
            EXECUTE q;
        END LOOP;
    END IF;
    DROP TABLE pg_temp.x402_analytics_batch;
    RETURN n;
END
$$;

-- Backfill from the daily payer rollup (days nest in months; records still pending are folded
-- into every rollup later). The lock keeps folds of the old function (other service processes) out until this
-- commits.
LOCK TABLE analytics_payers_daily IN SHARE MODE;

INSERT INTO analytics_payers_monthly
SELECT tenant_id, date_trunc('month', day, 'UTC'), payer, network, asset, sum(succeeded), sum(failed), sum(volume)
FROM analytics_payers_daily GROUP BY 1, 2, 3, 4, 5;

INSERT INTO analytics_payers_total
SELECT tenant_id, payer, network, asset, sum(succeeded), sum(failed), sum(volume)
FROM analytics_payers_daily GROUP BY 1, 2, 3, 4;

INSERT INTO analytics_payer_asset_counts
SELECT tenant_id, 'month', month, network, asset, count(*) FROM analytics_payers_monthly WHERE succeeded > 0
GROUP BY 1, 3, 4, 5
UNION ALL
SELECT tenant_id, 'total', '-infinity', network, asset, count(*) FROM analytics_payers_total WHERE succeeded > 0
GROUP BY 1, 4, 5;
