-- Usage events a provider reports for its own customers (issue 20): idempotent by (tenant, event id), so a resent
-- event is stored once. `ts` is when the usage happened (the billing period it counts in), `received_at` when it
-- arrived. Meter aggregates read (tenant_id, customer, meter, ts).
CREATE TABLE usage_events (
    tenant_id    uuid,
    id           text        NOT NULL,
    customer     text        NOT NULL,
    meter        text        NOT NULL,
    value        bigint      NOT NULL,
    ts           timestamptz NOT NULL,
    properties   jsonb       NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_events_id UNIQUE NULLS NOT DISTINCT (tenant_id, id)
);
CREATE INDEX usage_events_usage ON usage_events (tenant_id, customer, meter, ts);
