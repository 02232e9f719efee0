-- Payment records carry what was paid for and how long the facilitator took (analytics, issue 16):
--   resource     the paid resource's URL as the payment names it (v2 resource.url, v1 requirements.resource)
--   method       its HTTP method when known (the bazaar extension's input.method, or the paywall's request)
--   resource_id  the registry listing (resources.id) with that URL and method, filled at insert time
--   latency_ms   wall time of the verify / settle / verify-tx call that produced the record
--   risk, risk_level, risk_flags   the risk stage's recommendation, level and flag codes (comma-separated),
--                when it assessed the payment
ALTER TABLE payments ADD COLUMN resource text NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN method text NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN resource_id uuid;
ALTER TABLE payments ADD COLUMN latency_ms double precision CHECK (latency_ms >= 0);
ALTER TABLE payments ADD COLUMN risk text;
ALTER TABLE payments ADD COLUMN risk_level text;
ALTER TABLE payments ADD COLUMN risk_flags text;  -- flag codes joined by ','

-- The registry listing of a record's resource: the tenant's own listing first, else a listing of no tenant.
CREATE FUNCTION x402_payment_resource_id(p_tenant uuid, p_url text, p_method text) RETURNS uuid
    LANGUAGE sql STABLE AS $$
    SELECT id FROM resources
    WHERE url = p_url AND (p_method = '' OR method = p_method) AND (tenant_id = p_tenant OR tenant_id IS NULL)
    ORDER BY (tenant_id IS NULL), (method = 'GET') DESC, created_at
    LIMIT 1
$$;

CREATE FUNCTION x402_payment_resource() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.resource <> '' AND NEW.resource_id IS NULL THEN
        NEW.resource_id := x402_payment_resource_id(NEW.tenant_id, NEW.resource, NEW.method);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payments_resource BEFORE INSERT ON payments
    FOR EACH ROW WHEN (NEW.resource <> '' AND NEW.resource_id IS NULL) EXECUTE FUNCTION x402_payment_resource();

-- Backfill, in order of trust:
-- 1. settle records whose transaction is in the settlement journal: the resource and method the payment named
--    (v2 payload.resource.url, v1 requirements.resource; method from the bazaar extension's input).
UPDATE payments p SET
    resource = coalesce(s.payload #>> '{resource,url}', s.requirements ->> 'resource', ''),
    method = upper(coalesce(s.payload #>> '{extensions,bazaar,info,input,method}', ''))
FROM settlements s
WHERE p.kind = 'settle' AND p.tx IS NOT NULL AND p.resource = ''
  AND s.tx_id = p.tx AND s.network = p.network
  AND coalesce(s.payload #>> '{resource,url}', s.requirements ->> 'resource', '') <> '';

-- 2. any other record whose payTo and amount match exactly one registry listing visible to its tenant (an accept
--    with that payTo and that amount, v2 "amount" or v1 "maxAmountRequired").
WITH candidates AS (
    SELECT p.id, min(r.url) AS url, min(r.method) AS method, count(*) AS n
    FROM payments p
    JOIN resources r ON r.pay_to @> ARRAY[p.pay_to] AND (r.tenant_id = p.tenant_id OR r.tenant_id IS NULL)
    WHERE p.resource = '' AND p.pay_to <> ''
      AND EXISTS (
          SELECT 1 FROM jsonb_array_elements(r.accepts) a
          WHERE a ->> 'payTo' = p.pay_to AND coalesce(a ->> 'amount', a ->> 'maxAmountRequired') = p.amount::text
      )
    GROUP BY p.id
)
UPDATE payments p SET resource = c.url, method = c.method
FROM candidates c WHERE c.id = p.id AND c.n = 1;

-- 3. the registry id of every record that now names a resource.
UPDATE payments SET resource_id = x402_payment_resource_id(tenant_id, resource, method)
WHERE resource <> '' AND resource_id IS NULL;
