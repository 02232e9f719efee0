-- Payment identifiers are kept for X402_PAYMENT_IDENTIFIER_TTL days (default 30), then purged by the settlement
-- reconciler's loop; this index keeps that purge off a full scan of the table.
CREATE INDEX payment_identifiers_created ON payment_identifiers (created_at);
