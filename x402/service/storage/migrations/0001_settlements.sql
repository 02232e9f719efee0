-- Settlement journal and replay ledger: one row per payment, unique on its replay key, so a payment is
-- broadcast at most once across every server process sharing this database.
CREATE TABLE settlements (
    id              bigserial PRIMARY KEY,
    network         text        NOT NULL,
    asset           text        NOT NULL,
    payer           text        NOT NULL,
    nonce           text        NOT NULL,
    payload_hash    bytea       NOT NULL,
    status          text        NOT NULL CHECK (status IN ('claimed', 'submitted', 'confirmed', 'failed', 'pending')),
    pay_to          text        NOT NULL,
    amount          numeric(78, 0) NOT NULL CHECK (amount >= 0),
    tx_id           text,
    raw_tx          bytea,
    signer          text,
    signer_nonce    bigint,
    valid_until     bigint,
    error_reason    text,
    error_message   text,
    x402_version    smallint    NOT NULL,
    payload         jsonb       NOT NULL,
    requirements    jsonb       NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT settlements_replay_key UNIQUE (network, asset, payer, nonce)
);
CREATE INDEX settlements_open ON settlements (updated_at) WHERE status IN ('claimed', 'submitted', 'pending');
CREATE UNIQUE INDEX settlements_signer_nonce ON settlements (network, signer, signer_nonce)
    WHERE signer_nonce IS NOT NULL;
CREATE INDEX settlements_tx ON settlements (network, tx_id) WHERE tx_id IS NOT NULL;

-- Plain on-chain payments verified by transaction id: each is accepted once per payTo.
CREATE TABLE verified_transactions (
    id            bigserial PRIMARY KEY,
    network       text        NOT NULL,
    tx_id         text        NOT NULL,
    pay_to        text        NOT NULL,
    asset         text        NOT NULL,
    payer         text,
    amount        numeric(78, 0) NOT NULL,
    block_number  bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT verified_transactions_once UNIQUE (network, tx_id, pay_to)
);
