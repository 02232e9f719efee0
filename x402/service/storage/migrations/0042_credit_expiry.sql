-- Credits that expire (issue 20): a grant or purchase may carry `expires_at`; its credits form a lot whose
-- `remaining` every debit takes from, soonest expiry first (credits without an expiry last, so they are not in
-- `credit_lots`). `credit_lot_takes` records what each debit took from which lot, so a burn given back
-- (`burn_refund`) returns its credits to the lots they came from. The expiry pass writes an `expiry` entry for the
-- remainder of each lot past its date (reference `<kind>:<txn of the grant>`) and sets `remaining` to 0; `expiries`
-- numbers these entries when a refund refilled an expired lot. The ledger itself stays append-only.
ALTER TABLE credit_entries ADD COLUMN expires_at timestamptz;

CREATE TABLE credit_lots (
    tenant_id   uuid,
    txn         uuid        PRIMARY KEY,
    customer    text        NOT NULL,
    kind        text        NOT NULL,
    credits     bigint      NOT NULL,
    remaining   bigint      NOT NULL CHECK (remaining >= 0),
    expires_at  timestamptz NOT NULL,
    expiries    integer     NOT NULL DEFAULT 0
);
CREATE INDEX credit_lots_customer ON credit_lots (tenant_id, customer, expires_at) WHERE remaining > 0;
CREATE INDEX credit_lots_due ON credit_lots (expires_at) WHERE remaining > 0;

CREATE TABLE credit_lot_takes (
    tenant_id   uuid,
    txn         uuid        NOT NULL,
    lot         uuid        NOT NULL,
    credits     bigint      NOT NULL CHECK (credits > 0),
    PRIMARY KEY (txn, lot)
);
