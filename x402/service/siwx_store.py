"""The Postgres ``SiwxStore`` (``x402.paywall.siwx``): entitlements per tenant and single-use sign-in nonces.

Nonces are Postgres-only (a primary key; the first insert wins, so two workers never both accept one); expired
rows are swept now and then by the writes themselves. Entitlement rows carry the paywall's tenant (NULL for the
service's own paywall), are walled by row-level security, and exported / deleted with their tenant.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Final

import asyncpg

from x402.service.storage.scope import system_scope

#: One write in this many also deletes expired nonces and entitlements.
SWEEP_EVERY: Final = 200
_SCOPE_REASON: Final = "sign-in-with-x: the paywall names its tenant in every query"


class PgSiwxStore:
    """Entitlements and nonces in Postgres (migration 0025)."""

    def __init__(self, pool: asyncpg.Pool | Callable[[], asyncpg.Pool], *, tenant_id: uuid.UUID | None = None) -> None:
        # a callable (e.g. ``lambda: app[DB]``) lets a paywall be built before the app's pool exists
        self._pool = pool
        self.tenant_id = tenant_id

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (resolved on first use)."""
        return self._pool if isinstance(self._pool, asyncpg.Pool) else self._pool()

    async def record_entitlement(self, address: str, purchase: str, expires_at: datetime) -> None:
        """Insert, or extend an existing entitlement to the later expiry."""
        with system_scope(_SCOPE_REASON):
            await self.pool.execute(
                """
                INSERT INTO siwx_entitlements (tenant_id, address, purchase, expires_at) VALUES ($1, $2, $3, $4)
                ON CONFLICT ON CONSTRAINT siwx_entitlements_once DO UPDATE
                    SET expires_at = greatest(siwx_entitlements.expires_at, EXCLUDED.expires_at), updated_at = now()
                """,
                self.tenant_id,
                address,
                purchase,
                expires_at,
            )
            await self._maybe_sweep()

    async def has_entitlement(self, address: str, purchase: str, now: datetime) -> bool:
        """True for an unexpired entitlement of this tenant."""
        with system_scope(_SCOPE_REASON):
            found = await self.pool.fetchval(
                """
                SELECT 1 FROM siwx_entitlements
                WHERE tenant_id IS NOT DISTINCT FROM $1 AND address = $2 AND purchase = $3 AND expires_at > $4
                """,
                self.tenant_id,
                address,
                purchase,
                now,
            )
        return found is not None

    async def use_nonce(self, nonce: str, expires_at: datetime) -> bool:
        """True the first time ``nonce`` is used, False on every later attempt (in any worker)."""
        with system_scope(_SCOPE_REASON):
            inserted = await self.pool.fetchval(
                "INSERT INTO siwx_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
                nonce,
                expires_at,
            )
            await self._maybe_sweep()
        return inserted is not None

    async def _maybe_sweep(self) -> None:
        if random.randrange(SWEEP_EVERY):  # noqa: S311 - load spreading, not security
            return
        await self.pool.execute("DELETE FROM siwx_nonces WHERE expires_at < now() - interval '1 hour'")
        await self.pool.execute("DELETE FROM siwx_entitlements WHERE expires_at < now() - interval '1 day'")
