-- The payment-payload extensions a settlement needs to be (re)sent: an EIP-2612 permit of Permit2
-- (eip2612GasSponsoring) goes into the proxy's settleWithPermit call, so a settlement the reconciler sends
-- later must still have it. Only the extensions of Permit2 payments are kept ({} otherwise).
ALTER TABLE settlements ADD COLUMN IF NOT EXISTS extensions jsonb NOT NULL DEFAULT '{}'::jsonb;
