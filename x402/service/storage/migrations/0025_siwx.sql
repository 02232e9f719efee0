-- Sign-In-With-X (x402-spec §12.3): what a payer bought, so it can sign in instead of paying again.
-- purchase = sha256(method, path, sorted query, price version); address: EVM lower-case, Solana base58.
CREATE TABLE siwx_entitlements (
    tenant_id   uuid,                           -- NULL for the service's own paywall and providers without a tenant
    address     text        NOT NULL,
    purchase    text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT siwx_entitlements_once UNIQUE NULLS NOT DISTINCT (tenant_id, address, purchase)
);
CREATE INDEX siwx_entitlements_expiry ON siwx_entitlements (expires_at);

-- Sign-in nonces already used (single use across every paywall sharing this database); kept until they expire.
CREATE TABLE siwx_nonces (
    nonce       text        PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX siwx_nonces_expiry ON siwx_nonces (expires_at);
