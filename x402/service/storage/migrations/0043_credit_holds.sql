-- Credit charges are holds until the answer goes out (issue 20): the burn of a paywalled request is recorded here
-- as `held` (request key, customer, credits, created time) in the burn's own transaction. A handler that answered
-- makes it `captured` (one conditional UPDATE); a failed one refunds it as before (`refunded`). A process killed
-- between the burn and the answer leaves it `held`: the service's hold pass refunds every charge still held after
-- the hold timeout, once (row lock + the charge key's lock + the ledger's reference), through the ledger's normal
-- path (`burn_refund`, audited). The ledger (`credit_entries`) stays append-only; this table is only the state.
CREATE TABLE credit_charges (
    tenant_id   uuid,
    customer    text        NOT NULL,
    key         text        NOT NULL,
    reference   text        NOT NULL,
    txn         uuid        NOT NULL,
    credits     bigint      NOT NULL,
    state       text        NOT NULL CHECK (state IN ('held', 'captured', 'refunded')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz,
    CONSTRAINT credit_charges_reference UNIQUE NULLS NOT DISTINCT (tenant_id, customer, reference)
);
CREATE INDEX credit_charges_key ON credit_charges (tenant_id, customer, key);
CREATE INDEX credit_charges_held ON credit_charges (created_at) WHERE state = 'held';
