-- Hourly analytics rollups of the payment records, kept exact in two steps:
-- 1. a statement-level trigger on payments copies each batch the payment writer inserts into analytics_pending,
--    in the writer's own transaction (a plain INSERT: the writer's batches stay cheap);
-- 2. x402_analytics_fold(), called about once a second by the service (x402/service/analytics/folder.py), moves
--    pending rows into the rollups: the DELETE of the rows and the upserts commit together, rows locked by another
--    folder are skipped, so every record is folded exactly once.
-- Readers add the (few) pending rows to the rollups, so figures are exact at any moment.
-- Hours are UTC hours; every time zone whose offsets are whole hours buckets them exactly.
-- Payment records are append-only (the tenant lifecycle deletes a tenant's rollup rows with its records).

-- What a record means for analytics: a settle's outcome, a verify-tx's outcome, or an invalid verify (a payment
-- refused before any settle). A valid verify is not counted: its settle is.
CREATE FUNCTION x402_payment_outcome(p_kind text, p_status text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_kind = 'settle' THEN
            CASE p_status WHEN 'success' THEN 'succeeded' WHEN 'pending' THEN 'pending' ELSE 'failed' END
        WHEN p_kind = 'verify_tx' THEN
            CASE p_status WHEN 'verified' THEN 'succeeded' WHEN 'pending' THEN 'pending' ELSE 'failed' END
        WHEN p_kind = 'verify' AND p_status = 'invalid' THEN 'failed'
    END
$$;

-- Latency histogram bins: 1 ms wide below 100 ms (exact for whole milliseconds), then 2 % wide.
CREATE FUNCTION x402_latency_bin(ms double precision) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms < 100 THEN floor(ms)::integer ELSE 100 + floor(ln(ms / 100) / ln(1.02))::integer END
$$;

-- The lower edge of a bin (what a percentile falling in it reports).
CREATE FUNCTION x402_latency_bin_ms(bin integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bin < 100 THEN bin::double precision ELSE round((100 * 1.02 ^ (bin - 100))::numeric, 1)::float8 END
$$;

-- The UTC offset (seconds) of a time zone at a moment (labels buckets with the offset in force at their start).
CREATE FUNCTION x402_utc_offset(at timestamptz, tz text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT extract(epoch FROM (at AT TIME ZONE tz) - (at AT TIME ZONE 'UTC'))::integer
$$;

CREATE TABLE analytics_hourly (
    tenant_id       uuid,
    hour            timestamptz    NOT NULL,
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
    volume          numeric(78, 0) NOT NULL,   -- atomic units of succeeded payments
    pending_volume  numeric(78, 0) NOT NULL,   -- atomic units of settlements still pending
    CONSTRAINT analytics_hourly_key
        UNIQUE NULLS NOT DISTINCT (tenant_id, hour, network, asset, pay_to, resource, method, resource_id)
);

-- One row per payer, hour and asset (unique payers, top customers, cohorts).
CREATE TABLE analytics_payers_hourly (
    tenant_id   uuid,
    hour        timestamptz    NOT NULL,
    payer       text           NOT NULL,
    network     text           NOT NULL,
    asset       text           NOT NULL,
    succeeded   bigint         NOT NULL,
    failed      bigint         NOT NULL,
    volume      numeric(78, 0) NOT NULL,
    first_at    timestamptz,                  -- first / last succeeded payment in the hour
    last_at     timestamptz,
    CONSTRAINT analytics_payers_hourly_key UNIQUE NULLS NOT DISTINCT (tenant_id, hour, payer, network, asset)
);
CREATE INDEX analytics_payers_hourly_payer ON analytics_payers_hourly (tenant_id, payer, hour);

-- Lifetime per payer and asset (lifetime value, first / last seen, cohorts by first-payment week).
CREATE TABLE analytics_payers (
    tenant_id   uuid,
    payer       text           NOT NULL,
    network     text           NOT NULL,
    asset       text           NOT NULL,
    succeeded   bigint         NOT NULL,
    volume      numeric(78, 0) NOT NULL,
    first_at    timestamptz    NOT NULL,
    last_at     timestamptz    NOT NULL,
    CONSTRAINT analytics_payers_key UNIQUE NULLS NOT DISTINCT (tenant_id, payer, network, asset)
);
CREATE INDEX analytics_payers_first ON analytics_payers (tenant_id, first_at);

-- The ISO weeks (UTC, from Monday) in which a payer paid successfully (cohort retention).
CREATE TABLE analytics_payer_weeks (
    tenant_id   uuid,
    week        timestamptz NOT NULL,
    payer       text        NOT NULL,
    succeeded   bigint      NOT NULL,
    CONSTRAINT analytics_payer_weeks_key UNIQUE NULLS NOT DISTINCT (tenant_id, week, payer)
);

-- Latency histogram per operation: 'verify' (verify, verify-tx) and 'settle'.
CREATE TABLE analytics_latency_hourly (
    tenant_id   uuid,
    hour        timestamptz NOT NULL,
    op          text        NOT NULL CHECK (op IN ('verify', 'settle')),
    bin         integer     NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_latency_hourly_key UNIQUE NULLS NOT DISTINCT (tenant_id, hour, op, bin)
);

-- Failed records by kind and reason.
CREATE TABLE analytics_failures_hourly (
    tenant_id   uuid,
    hour        timestamptz NOT NULL,
    kind        text        NOT NULL,
    reason      text        NOT NULL,
    network     text        NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_failures_hourly_key UNIQUE NULLS NOT DISTINCT (tenant_id, hour, kind, reason, network)
);

-- Risk outcomes: flag = '' rows count assessments by recommendation and level; other rows count one flag code.
CREATE TABLE analytics_risk_hourly (
    tenant_id   uuid,
    hour        timestamptz NOT NULL,
    kind        text        NOT NULL,
    risk        text        NOT NULL,
    level       text        NOT NULL,
    flag        text        NOT NULL,
    n           bigint      NOT NULL,
    CONSTRAINT analytics_risk_hourly_key UNIQUE NULLS NOT DISTINCT (tenant_id, hour, kind, risk, level, flag)
);

-- The upserts that fold a set of payment records (``src``: the trigger's transition table, or payments for the
-- backfill) into the rollups; keys are sorted so concurrent batches lock rollup rows in the same order.
CREATE FUNCTION x402_analytics_rollup_sql(src text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $f$
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
INSERT INTO analytics_payers AS h (tenant_id, payer, network, asset, succeeded, volume, first_at, last_at)
SELECT tenant_id, payer, network, asset, count(*), sum(amount), min(created_at), max(created_at)
FROM %1$s WHERE x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT ON CONSTRAINT analytics_payers_key DO UPDATE SET
    succeeded = h.succeeded + excluded.succeeded, volume = h.volume + excluded.volume,
    first_at = least(h.first_at, excluded.first_at), last_at = greatest(h.last_at, excluded.last_at)
$q$, src),
format($q$
INSERT INTO analytics_payer_weeks AS h (tenant_id, week, payer, succeeded)
SELECT tenant_id, date_trunc('week', created_at, 'UTC'), payer, count(*)
FROM %1$s WHERE x402_payment_outcome(kind, status) = 'succeeded' AND payer IS NOT NULL AND payer <> ''
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT ON CONSTRAINT analytics_payer_weeks_key DO UPDATE SET succeeded = h.succeeded + excluded.succeeded
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

-- Records inserted but not folded yet (the columns the rollups read).
CREATE TABLE analytics_pending (
    tenant_id   uuid,
    kind        text             NOT NULL,
    status      text             NOT NULL,
    network     text             NOT NULL,
    asset       text             NOT NULL,
    payer       text,
    pay_to      text             NOT NULL,
    amount      numeric(78, 0)   NOT NULL,
    reason      text,
    created_at  timestamptz      NOT NULL,
    resource    text             NOT NULL,
    method      text             NOT NULL,
    resource_id uuid,
    latency_ms  double precision,
    risk        text,
    risk_level  text,
    risk_flags  text
);
CREATE INDEX analytics_pending_tenant ON analytics_pending (tenant_id, created_at);

CREATE FUNCTION x402_analytics_pend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_pending
    SELECT tenant_id, kind, status, network, asset, payer, pay_to, amount, reason, created_at, resource, method,
           resource_id, latency_ms, risk, risk_level, risk_flags
    FROM new_rows;
    RETURN NULL;
END
$$;
CREATE TRIGGER payments_analytics AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION x402_analytics_pend();

-- Fold up to max_rows pending records into the rollups; returns how many were folded.
CREATE FUNCTION x402_analytics_fold(max_rows integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    q text;
    n integer;
BEGIN
    CREATE TEMP TABLE x402_analytics_batch (LIKE analytics_pending) ON COMMIT DROP;
    WITH picked AS (
        SELECT ctid FROM analytics_pending LIMIT max_rows FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM analytics_pending p USING picked WHERE p.ctid = picked.ctid RETURNING p.*
    )
    INSERT INTO x402_analytics_batch SELECT * FROM moved;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        FOREACH q IN ARRAY x402_analytics_rollup_sql('pg_temp.x402_analytics_batch') LOOP
            EXECUTE q;
        END LOOP;
    END IF;
    DROP TABLE pg_temp.x402_analytics_batch;
    RETURN n;
END
$$;

-- The records written before this migration.
DO $$
DECLARE
    q text;
BEGIN
    FOREACH q IN ARRAY x402_analytics_rollup_sql('payments') LOOP
        EXECUTE q;
    END LOOP;
END
$$;
