-- Tenant walls (issue 13): verify-tx records per tenant, payTo claims, one rating per tenant, agent keys marked.

-- A verified transaction is accepted once per (tenant, payTo); NULL tenant = anonymous callers with keys off.
ALTER TABLE verified_transactions ADD COLUMN tenant_id uuid;
ALTER TABLE verified_transactions DROP CONSTRAINT verified_transactions_once;
ALTER TABLE verified_transactions ADD CONSTRAINT verified_transactions_once
    UNIQUE NULLS NOT DISTINCT (tenant_id, network, tx_id, pay_to);

-- payTo addresses a tenant proved it controls (EIP-191 / ed25519 signature of a message naming the tenant):
-- verify-tx for a claimed payTo is refused to every other caller. One claimant per address.
CREATE TABLE payto_claims (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address     text        NOT NULL,                 -- EVM: lower-case 0x hex; Solana: base58 as given
    proof_kind  text        NOT NULL CHECK (proof_kind IN ('eip191', 'ed25519')),
    signature   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payto_claims_address UNIQUE (address)
);
CREATE INDEX payto_claims_tenant ON payto_claims (tenant_id, created_at);

-- Registry ratings: one per rater (tenant; NULL = the operator) and resource; resources keep the aggregate.
CREATE TABLE resource_ratings (
    resource_id uuid        NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    tenant_id   uuid,
    rating      smallint    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resource_ratings_once UNIQUE NULLS NOT DISTINCT (resource_id, tenant_id)
);
CREATE INDEX resource_ratings_tenant ON resource_ratings (tenant_id, updated_at);

-- Agent keys are marked on the key itself, so a key whose wallet binding is gone stays limited (to nothing).
ALTER TABLE api_keys ADD COLUMN agent boolean NOT NULL DEFAULT false;
UPDATE api_keys SET agent = true WHERE id IN (SELECT key_id FROM wallet_agent_keys);
