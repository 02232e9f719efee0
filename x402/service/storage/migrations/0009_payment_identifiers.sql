-- /settle answers success once per payment: the first settle that sees the confirmation takes it.
ALTER TABLE settlements ADD COLUMN success_delivered boolean NOT NULL DEFAULT false;
-- confirmed before this migration: their success was answered (or is reachable only through an explicit retry)
UPDATE settlements SET success_delivered = true WHERE status = 'confirmed';

-- The payment-identifier extension: a settlement made under an id, at most one live (not failed) per tenant + id.
ALTER TABLE settlements ADD COLUMN id_tenant text;
ALTER TABLE settlements ADD COLUMN payment_identifier text;
CREATE UNIQUE INDEX settlements_payment_identifier ON settlements (id_tenant, payment_identifier)
    WHERE payment_identifier IS NOT NULL AND status <> 'failed';

-- What an id stands for (tenant, scheme, network, asset, amount, payTo, resource): reused for anything else -> 409.
CREATE TABLE payment_identifiers (
    tenant_id    uuid,                          -- NULL for callers without a tenant (API keys off)
    id           text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_identifiers_once UNIQUE NULLS NOT DISTINCT (tenant_id, id)
);
