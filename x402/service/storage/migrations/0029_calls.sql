-- One row per routed call (POST /v1/call, /v1/proxy/...): who called (tenant_id = the caller's tenant), from which
-- wallet, which listed resource, whose listing (owner_tenant_id), what was paid and the platform fee owed.
CREATE TABLE calls (
    id               uuid           PRIMARY KEY,
    tenant_id        uuid,
    wallet_id        uuid           NOT NULL,
    resource_id      uuid           NOT NULL,
    owner_tenant_id  uuid,
    url              text           NOT NULL,
    method           text           NOT NULL,
    payer            text,
    pay_to           text,
    amount           numeric(78, 0) NOT NULL DEFAULT 0 CHECK (amount >= 0),
    fee_bps          integer        NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
    fee              numeric(78, 0) NOT NULL DEFAULT 0 CHECK (fee >= 0),
    status           text           NOT NULL CHECK (status IN ('paid', 'free', 'refused', 'failed', 'pending')),
    code             text,
    upstream_status  integer,
    payment_id       uuid,
    latency_ms       integer        NOT NULL DEFAULT 0,
    created_at       timestamptz    NOT NULL DEFAULT now()
);
CREATE INDEX calls_tenant ON calls (tenant_id, created_at DESC);
CREATE INDEX calls_resource ON calls (resource_id, created_at);
