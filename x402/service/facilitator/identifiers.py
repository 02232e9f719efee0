"""Payment identifiers on the facilitator: what each (tenant, id) stands for, so reuse for another purchase is a 409."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.service.storage.scope import system_scope, tenant_scope
from x402.wire import payment_identifier as pid
from x402.wire.models import PaymentPayload, PaymentRequirements

#: The tenant name used for callers without one (API keys off, the in-process paywall).
ANONYMOUS = ""


@dataclass(frozen=True, slots=True)
class Identifier:
    """A payment's identifier, scoped to the tenant that presented it."""

    tenant: str
    id: str


def identifier_of(payload: AnyPayload, requirements: AnyRequirements, tenant_id: str | None) -> Identifier | None:
    """The payload's id (None without one); raises 400 for a malformed or a required-but-missing id."""
    if not isinstance(payload, PaymentPayload):
        return None  # v1 payloads carry no extensions
    value, required = pid.extract(payload.extensions)
    if value is None:
        if required:
            raise pid.PaymentIdentifierRequired(
                f'this payment requires extensions["{pid.KEY}"].info.id (16-128 characters of [A-Za-z0-9_-])'
            )
        return None
    if not isinstance(requirements, PaymentRequirements):
        return None  # mixed versions: routing rejects the payment
    return Identifier(tenant_id or ANONYMOUS, value)


def fingerprint_of(ident: Identifier, requirements: PaymentRequirements, resource: str) -> bytes:
    """The purchase an id stands for at the facilitator (the HTTP method is the resource server's to add)."""
    return pid.fingerprint(
        tenant=ident.tenant,
        scheme=requirements.scheme,
        network=requirements.network,
        asset=requirements.asset,
        amount=requirements.amount,
        pay_to=requirements.pay_to,
        resource=resource,
    )


class IdentifierStore:
    """Binds each (tenant, id) to the fingerprint of its first purchase, in Postgres (shared by every process)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def bind(self, ident: Identifier, fingerprint: bytes) -> None:
        """Bind the id, or check it is bound to the same purchase; raises PaymentIdentifierConflict (409)."""
        # one round trip: the no-op update returns the row that holds the id, ours or the first one
        with tenant_scope(ident.tenant or None):  # the id is the tenant's row, whoever calls (route or paywall)
            bound = await self._bind(ident, fingerprint)
        if bytes(bound) != fingerprint:
            raise pid.PaymentIdentifierConflict(
                "this payment identifier was already used for another purchase (scheme, network, asset, amount, "
                "payTo or resource differ)"
            )

    async def _bind(self, ident: Identifier, fingerprint: bytes) -> bytes:
        bound: bytes = await self.pool.fetchval(
            """INSERT INTO payment_identifiers (tenant_id, id, fingerprint) VALUES ($1::text::uuid, $2, $3)
               ON CONFLICT ON CONSTRAINT payment_identifiers_once DO UPDATE SET id = EXCLUDED.id
               RETURNING fingerprint""",
            ident.tenant or None,
            ident.id,
            fingerprint,
        )
        return bound

    async def purge(self, ttl_days: float) -> int:
        """Forget ids bound more than ``ttl_days`` ago, of every tenant; returns how many.

        A forgotten id may be bound again, to any purchase: the window is how long reuse is refused.
        """
        with system_scope("payment identifier retention: old ids of every tenant"):
            result = await self.pool.execute(
                "DELETE FROM payment_identifiers WHERE created_at < now() - $1::interval", timedelta(days=ttl_days)
            )
        return int(result.split()[-1])
