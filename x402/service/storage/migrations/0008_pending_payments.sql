-- A wallet payment whose header went out is 'pending' until the chain proves it settled (committed) or void
-- (released). It counts against every cap meanwhile; proof holds what the reconciler needs to ask the chain.
ALTER TABLE wallet_payments DROP CONSTRAINT wallet_payments_status_check;
ALTER TABLE wallet_payments ADD CONSTRAINT wallet_payments_status_check
    CHECK (status IN ('reserved', 'pending', 'committed', 'released'));
ALTER TABLE wallet_payments
    ADD COLUMN payer        text,
    ADD COLUMN proof        jsonb,
    ADD COLUMN purchase     bytea,
    ADD COLUMN sent_at      timestamptz,
    ADD COLUMN resolved_at  timestamptz,
    ADD COLUMN checked_at   timestamptz;
DROP INDEX wallet_payments_window;
CREATE INDEX wallet_payments_window ON wallet_payments (wallet_id, created_at)
    WHERE status IN ('reserved', 'pending', 'committed');
CREATE INDEX wallet_payments_pending ON wallet_payments (checked_at NULLS FIRST) WHERE status = 'pending';
CREATE INDEX wallet_payments_purchase ON wallet_payments (wallet_id, purchase) WHERE status = 'pending';

-- 'delegated': the handler is idempotent under this key itself (money may have moved): retries reach it again,
-- and the key is never freed.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_status_check;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_status_check
    CHECK (status IN ('running', 'done', 'delegated'));
