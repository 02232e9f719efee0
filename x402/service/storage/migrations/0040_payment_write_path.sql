-- The payment writer resolves a record's registry listing (resource_id) in its batch INSERT itself, with the rule
-- of x402_payment_resource_id (migration 0020), and the dead-letter replay calls that function; the per-row trigger
-- of 0020, a PL/pgSQL call per inserted record, goes. Every other INSERT into payments now names resource_id itself
-- (left NULL, a record is attributed to no listing, as one whose URL no listing has).
DROP TRIGGER payments_resource ON payments;
DROP FUNCTION x402_payment_resource();
