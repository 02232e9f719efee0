-- Risk stage: address lists (global when tenant_id is NULL), tenant rule documents, and their audit trail.
CREATE TABLE risk_address_lists (
    id          bigserial PRIMARY KEY,
    tenant_id   text,
    list        text        NOT NULL CHECK (list IN ('allow', 'deny', 'exchange', 'mixer', 'exploit')),
    address     text        NOT NULL,
    label       text        NOT NULL DEFAULT '',
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX risk_address_lists_once ON risk_address_lists (COALESCE(tenant_id, ''), list, address);

CREATE TABLE risk_rule_configs (
    tenant_id   text,
    document    jsonb       NOT NULL,
    version     integer     NOT NULL DEFAULT 1,
    updated_by  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX risk_rule_configs_tenant ON risk_rule_configs (COALESCE(tenant_id, ''));

-- Every change to rules and lists (who, what, before/after), kept even when the platform audit log is absent.
CREATE TABLE risk_audit (
    id          bigserial PRIMARY KEY,
    tenant_id   text,
    actor       text,
    action      text        NOT NULL,
    subject     text        NOT NULL,
    before      jsonb,
    after       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX risk_audit_tenant ON risk_audit (COALESCE(tenant_id, ''), id);

-- The payer-history rule counts a payer's confirmed settlements (and those to one payTo) on every assessment.
CREATE INDEX settlements_payer_confirmed ON settlements (payer, lower(pay_to)) WHERE status = 'confirmed';
