-- Prepaid credits (issue 20): a double-entry, append-only ledger per customer. Every movement is one transaction
-- `txn` of two legs that sum to zero: the customer's account (`customer:<id>`) and a counter account
-- (`issued:grant`, `issued:purchase`, `consumed:burn`, `expired`, `refunded`). `credit_accounts` holds each
-- customer's running balance; it is what a burn locks and checks, so concurrent burns stay exact. `reference`
-- makes a movement idempotent per tenant and kind (a top-up is keyed by its payment id: paid once, granted once).
CREATE TABLE credit_accounts (
    tenant_id   uuid,
    customer    text        NOT NULL,
    balance     bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_accounts_customer UNIQUE NULLS NOT DISTINCT (tenant_id, customer)
);
CREATE TABLE credit_entries (
    seq          bigserial   PRIMARY KEY,
    txn          uuid        NOT NULL,
    tenant_id    uuid,
    customer     text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('grant', 'purchase', 'burn', 'expiry', 'refund')),
    account      text        NOT NULL,
    amount       bigint      NOT NULL,
    balance      bigint,
    meter        text,
    units        bigint,
    reference    text,
    actor        text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_entries_customer ON credit_entries (tenant_id, customer, seq DESC);
CREATE UNIQUE INDEX credit_entries_reference ON credit_entries (tenant_id, kind, reference, account) NULLS NOT DISTINCT
    WHERE reference IS NOT NULL;

-- append-only: an entry is never changed (rows leave only with their tenant, through the tenant lifecycle)
CREATE FUNCTION credit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_entries is append-only';
END $$;
CREATE TRIGGER credit_entries_no_update BEFORE UPDATE ON credit_entries
    FOR EACH ROW EXECUTE FUNCTION credit_entries_append_only();
