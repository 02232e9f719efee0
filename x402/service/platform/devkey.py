"""``x402 serve --dev``: a ``dev`` tenant and a fresh test-mode key with every scope, printed for the developer."""

from __future__ import annotations

import asyncpg

from x402.service.platform.keys import SCOPES
from x402.service.platform.tenants import Actor, TenantStore, parse_uuid
from x402.service.platform.tiers import DEFAULT_TIERS

DEV_TENANT = "dev"


async def create_dev_key(database_url: str) -> str:
    """Create (or reuse) the dev tenant and mint a test key for it; returns the plaintext key."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    assert pool is not None
    try:
        store = TenantStore(pool, frozenset(DEFAULT_TIERS))
        actor = Actor("dev-mode")
        tenant = await store.find_tenant_by_name(DEV_TENANT)
        if tenant is None:
            tenant = await store.create_tenant(DEV_TENANT, "enterprise", actor)
        _, plaintext = await store.create_key(
            parse_uuid(tenant["id"]), actor, scopes=list(SCOPES), mode="test", name="x402 serve --dev"
        )
        return plaintext
    finally:
        await pool.close()
