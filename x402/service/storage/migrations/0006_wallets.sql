-- Budgeted agent wallets: encrypted keys, policy, the reserve/commit/release ledger, approvals, events, webhooks.
CREATE TABLE wallets (
    id                    uuid        PRIMARY KEY,
    tenant_id             uuid,
    name                  text        NOT NULL DEFAULT '',
    evm_address           text,
    svm_address           text,
    status                text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    paused_reason         text,
    policy                jsonb       NOT NULL DEFAULT '{}',
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wallets_tenant ON wallets (tenant_id, created_at);

-- Only AES-256-GCM ciphertext (aad = wallet id + chain); key_id names the master key that sealed it.
CREATE TABLE wallet_keys (
    wallet_id   uuid        NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    chain       text        NOT NULL CHECK (chain IN ('evm', 'svm')),
    key_id      text        NOT NULL,
    nonce       bytea       NOT NULL CHECK (length(nonce) = 12),
    ciphertext  bytea       NOT NULL,
    rotated_at  timestamptz,
    PRIMARY KEY (wallet_id, chain)
);

-- One row per payment attempt: reserved -> committed | released. Caps count committed + reserved.
CREATE TABLE wallet_payments (
    id               uuid           PRIMARY KEY,
    wallet_id        uuid           NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    status           text           NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
    amount           numeric(78, 0) NOT NULL CHECK (amount >= 0),
    network          text           NOT NULL,
    asset            text           NOT NULL,
    pay_to           text           NOT NULL,
    url              text           NOT NULL,
    idempotency_key  text,
    approval_id      uuid,
    tx               text,
    reason           text,
    result           jsonb,
    created_at       timestamptz    NOT NULL DEFAULT now(),
    expires_at       timestamptz    NOT NULL,
    settled_at       timestamptz
);
CREATE INDEX wallet_payments_window ON wallet_payments (wallet_id, created_at) WHERE status IN ('reserved', 'committed');
CREATE INDEX wallet_payments_expiry ON wallet_payments (expires_at) WHERE status = 'reserved';
CREATE UNIQUE INDEX wallet_payments_idem ON wallet_payments (wallet_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- A payment above the approval threshold waits here until a person approves or rejects it.
CREATE TABLE wallet_approvals (
    id          uuid           PRIMARY KEY,
    wallet_id   uuid           NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    status      text           NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'used')),
    amount      numeric(78, 0) NOT NULL,
    network     text           NOT NULL,
    asset       text           NOT NULL,
    pay_to      text           NOT NULL,
    url         text           NOT NULL,
    decided_by  text,
    created_at  timestamptz    NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    expires_at  timestamptz    NOT NULL
);
CREATE INDEX wallet_approvals_wallet ON wallet_approvals (wallet_id, created_at DESC);

-- API keys (x402/platform api_keys) bound to wallets: such a key may only pay from / read these wallets.
CREATE TABLE wallet_agent_keys (
    key_id      uuid        NOT NULL,
    wallet_id   uuid        NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, wallet_id)
);

-- Wallet events (payment.made, wallet.low_budget, wallet.paused); dedupe makes a threshold fire once.
CREATE TABLE wallet_events (
    id          bigserial   PRIMARY KEY,
    tenant_id   uuid,
    wallet_id   uuid        NOT NULL,
    kind        text        NOT NULL,
    dedupe      text        UNIQUE,
    data        jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Webhook endpoints per tenant; the signing secret is sealed with the master key like wallet keys.
CREATE TABLE webhook_endpoints (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid,
    url         text        NOT NULL,
    events      text[]      NOT NULL,
    key_id      text        NOT NULL,
    nonce       bytea       NOT NULL,
    ciphertext  bytea       NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id) WHERE active;

CREATE TABLE webhook_deliveries (
    id               bigserial   PRIMARY KEY,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL REFERENCES wallet_events (id),
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Deliveries that failed every attempt, kept for inspection and manual replay.
CREATE TABLE webhook_dead_letters (
    id           bigserial   PRIMARY KEY,
    delivery_id  bigint      NOT NULL UNIQUE,
    endpoint_id  uuid        NOT NULL,
    event_id     bigint      NOT NULL,
    attempts     integer     NOT NULL,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
