-- Credits charged by a paywalled route (issue 20): a burn undone because the handler failed is a `burn_refund`
-- movement (customer +N, `consumed:burn` -N), keyed by the burn's reference, so a failed request costs nothing and
-- the ledger still shows both legs of what happened.
ALTER TABLE credit_entries DROP CONSTRAINT credit_entries_kind_check;
ALTER TABLE credit_entries ADD CONSTRAINT credit_entries_kind_check
    CHECK (kind IN ('grant', 'purchase', 'burn', 'expiry', 'refund', 'burn_refund'));
