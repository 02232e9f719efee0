"""Multi-tenant platform: tenants, API keys, tiers, rate limits, quotas, idempotency, audit log, payment records."""
