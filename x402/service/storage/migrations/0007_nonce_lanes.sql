-- Signer nonce lanes: every nonce the journal hands out is consumed on chain (by its settlement, by a later
-- settlement reusing it, or by a zero-value self-transfer), and gas-bumped replacements keep their history.

-- Earlier signed versions of a settlement at the same nonce (gas bumps): any of them may be the one mined.
ALTER TABLE settlements ADD COLUMN replaced_tx_ids text[] NOT NULL DEFAULT '{}';
-- When the current transaction was last handed to the node (a stuck transaction is judged from here).
ALTER TABLE settlements ADD COLUMN sent_at timestamptz;

-- A failed settlement whose nonce never reached the chain gives the nonce back to its lane for reuse.
DROP INDEX settlements_signer_nonce;
CREATE UNIQUE INDEX settlements_signer_nonce ON settlements (network, signer, signer_nonce)
    WHERE signer_nonce IS NOT NULL AND status <> 'failed';

-- Zero-value self-transfers that fill a reserved nonce nothing else will use; journalled before broadcast.
CREATE TABLE nonce_fills (
    id              bigserial PRIMARY KEY,
    network         text        NOT NULL,
    signer          text        NOT NULL,
    nonce           bigint      NOT NULL,
    settlement_id   bigint      REFERENCES settlements (id) ON DELETE SET NULL,
    status          text        NOT NULL CHECK (status IN ('submitted', 'confirmed', 'consumed')),
    tx_id           text        NOT NULL,
    raw_tx          bytea       NOT NULL,
    replaced_tx_ids text[]      NOT NULL DEFAULT '{}',
    sent_at         timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX nonce_fills_open ON nonce_fills (network, signer, nonce) WHERE status = 'submitted';
