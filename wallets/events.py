"""Wallet events (``payment.made``, ``payment.pending``/``.resolved``, ``wallet.*``): provider events like the
service's others, under the same envelope and delivery (``x402/service/events/``)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.webhooks import API_VERSION

Conn = asyncpg.Connection | PoolConnectionProxy

KINDS: Final = (
    "payment.made",
    "payment.pending",
    "payment.resolved",
    "wallet.low_budget",
    "wallet.paused",
    "wallet.resumed",
)
LOW_BUDGET_STEPS: Final = (80, 90, 100)


def purchase_json(row: Any) -> dict[str, Any]:
    """What was (or is to be) bought, from a ledger or approval row: amount, network, asset, payee and URL."""
    return {
        # atomic units as a plain integer (a numeric column may arrive as Decimal('1E+4'))
        "amount": str(int(row["amount"])),
        "network": row["network"],
        "asset": row["asset"],
        "payTo": row["pay_to"],
        "url": row["url"],
    }


def dedupe_id(dedupe: str) -> uuid.UUID:
    """The event id of a once-only event: the same in every process, so a second insert is a no-op.

    ``md5('wallet_event:' || dedupe)::uuid`` in SQL (migration 0017 gives moved rows the same ids).
    """
    return uuid.UUID(hashlib.md5(f"wallet_event:{dedupe}".encode(), usedforsecurity=False).hexdigest())


async def emit(
    conn: Conn,
    *,
    tenant_id: uuid.UUID | None,
    wallet_id: uuid.UUID,
    kind: str,
    data: Mapping[str, Any],
    dedupe: str | None = None,
) -> uuid.UUID | None:
    """Record a provider event (``provider_events``, the service's outbox) in the caller's transaction.

    The service's dispatcher fans it out to the tenant's webhook endpoints. With ``dedupe`` the event fires once
    ever (across processes); returns None when it already did.
    """
    event_id = dedupe_id(dedupe) if dedupe is not None else uuid.uuid4()
    inserted = await conn.fetchval(
        """INSERT INTO provider_events (id, tenant_id, type, api_version, data, created_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, now()) ON CONFLICT (id) DO NOTHING RETURNING id""",
        event_id,
        tenant_id,
        kind,
        API_VERSION,
        json.dumps({"walletId": str(wallet_id), **data}, separators=(",", ":")),
    )
    return None if inserted is None else event_id


def crossed(used: int, cap: int) -> list[int]:
    """Low-budget percentages reached by ``used`` of ``cap``."""
    if cap <= 0:
        return list(LOW_BUDGET_STEPS)
    return [pct for pct in LOW_BUDGET_STEPS if used * 100 >= cap * pct]
