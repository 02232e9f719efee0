-- Meters, plans with entitlements, customers on a plan, and the limit warnings already sent (issue 20).
-- Keys are the provider's own names, unique per tenant. A plan's `limits` maps meter -> units per billing period,
-- `overage` maps meter -> price per unit beyond the limit (atomic units, soft plans), `burn_rates` maps meter ->
-- {credits, per} (credits burned per `per` units). `usage_warnings` makes each 80/90/100% warning fire once per
-- customer, meter and period.
CREATE TABLE usage_meters (
    tenant_id    uuid,
    key          text        NOT NULL,
    aggregation  text        NOT NULL CHECK (aggregation IN ('sum', 'count', 'max', 'unique')),
    property     text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_meters_key UNIQUE NULLS NOT DISTINCT (tenant_id, key)
);
CREATE TABLE usage_plans (
    tenant_id       uuid,
    key             text        NOT NULL,
    features        text[]      NOT NULL DEFAULT '{}',
    limits          jsonb       NOT NULL DEFAULT '{}',
    stop            text        NOT NULL DEFAULT 'hard' CHECK (stop IN ('hard', 'soft')),
    overage         jsonb       NOT NULL DEFAULT '{}',
    burn_rates      jsonb       NOT NULL DEFAULT '{}',
    allow_negative  boolean     NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_plans_key UNIQUE NULLS NOT DISTINCT (tenant_id, key)
);
CREATE TABLE usage_customers (
    tenant_id   uuid,
    id          text        NOT NULL,
    plan        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_customers_id UNIQUE NULLS NOT DISTINCT (tenant_id, id)
);
CREATE TABLE usage_warnings (
    tenant_id   uuid,
    customer    text        NOT NULL,
    meter       text        NOT NULL,
    period      text        NOT NULL,
    threshold   integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_warnings_once UNIQUE NULLS NOT DISTINCT (tenant_id, customer, meter, period, threshold)
);
