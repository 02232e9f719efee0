-- Tenant lifecycle: a deleted tenant stays as an anonymised tombstone (ids in the audit log still resolve).
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check CHECK (status IN ('active', 'suspended', 'deleted'));
ALTER TABLE tenants ADD COLUMN status_changed_at timestamptz;

-- One data key (DEK) per tenant, sealed under the master key (aad = tenant id). A tenant's wallet keys are
-- sealed under its DEK, so deleting this row crypto-shreds them: the master key alone no longer opens them.
CREATE TABLE tenant_data_keys (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL UNIQUE,
    key_id      text        NOT NULL,
    nonce       bytea       NOT NULL CHECK (length(nonce) = 12),
    ciphertext  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Set when the key is sealed under a tenant DEK (key_id is then the DEK's id, not a master key's).
ALTER TABLE wallet_keys ADD COLUMN dek_id uuid REFERENCES tenant_data_keys (id);
