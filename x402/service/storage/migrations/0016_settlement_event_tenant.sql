-- The API key's tenant of the settle that claimed a settlement, so the reconciler's `payment.reconciled` event goes
-- to that tenant. Not named tenant_id: settlements stay a global table (the journal of every tenant's payments).
ALTER TABLE settlements ADD COLUMN event_tenant uuid;
