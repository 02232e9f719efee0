-- Multi-tenant platform: tenants, API keys (hashes only), idempotency keys, audit log, events, payment records.
CREATE TABLE tenants (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    tier        text        NOT NULL DEFAULT 'free',
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The secret part of a key is never stored: only its SHA-256, looked up by the public prefix.
CREATE TABLE api_keys (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    name          text        NOT NULL DEFAULT '',
    prefix        text        NOT NULL UNIQUE,
    hash          bytea       NOT NULL CHECK (length(hash) = 32),
    scopes        text[]      NOT NULL,
    mode          text        NOT NULL CHECK (mode IN ('live', 'test')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

-- Stripe-style idempotency: one row per (tenant, key); the stored response is replayed for 24 h.
CREATE TABLE idempotency_keys (
    tenant_id         uuid        NOT NULL,
    key               text        NOT NULL,
    method            text        NOT NULL,
    path              text        NOT NULL,
    request_hash      bytea       NOT NULL,
    status            text        NOT NULL CHECK (status IN ('running', 'done')),
    response_status   integer,
    response_headers  jsonb,
    response_body     bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical JSON of the row's content).
CREATE TABLE audit_log (
    id           bigserial   PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text        NOT NULL,
    action       text        NOT NULL,
    object_type  text        NOT NULL,
    object_id    text        NOT NULL,
    before       jsonb,
    after        jsonb,
    request_id   text,
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL
);

-- Defence in depth: ordinary writers cannot rewrite history (the hash chain catches anyone who bypasses this).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_rewrite BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Notable happenings per tenant (quota thresholds, ...); unique per period so each fires once across processes.
CREATE TABLE events (
    id          bigserial   PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    kind        text        NOT NULL,
    period      text        NOT NULL,
    data        jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_once UNIQUE (tenant_id, kind, period)
);

-- Every verify / settle / verify-tx outcome; tenant_id is NULL when API keys are off (anonymous).
-- No foreign key: rows arrive in batches on the hot path.
CREATE TABLE payments (
    id          uuid           PRIMARY KEY,
    tenant_id   uuid,
    kind        text           NOT NULL CHECK (kind IN ('verify', 'settle', 'verify_tx')),
    status      text           NOT NULL,
    network     text           NOT NULL,
    asset       text           NOT NULL DEFAULT '',
    payer       text,
    pay_to      text           NOT NULL DEFAULT '',
    amount      numeric(78, 0) NOT NULL DEFAULT 0 CHECK (amount >= 0),
    tx          text,
    reason      text,
    created_at  timestamptz    NOT NULL
);
CREATE INDEX payments_tenant_time ON payments (tenant_id, created_at DESC, id DESC);
