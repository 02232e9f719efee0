"""Wallet events (``payment.made``, ``payment.pending``/``.resolved``, ``wallet.*``) fanned out to webhooks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

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
        "amount": str(row["amount"]),
        "network": row["network"],
        "asset": row["asset"],
        "payTo": row["pay_to"],
        "url": row["url"],
    }


async def emit(
    conn: Conn,
    *,
    tenant_id: uuid.UUID | None,
    wallet_id: uuid.UUID,
    kind: str,
    data: Mapping[str, Any],
    dedupe: str | None = None,
) -> int | None:
    """Record an event and queue one delivery per subscribed endpoint, in the caller's transaction.

    With ``dedupe`` the event fires once ever (across processes); returns None when it already did.
    """
    event_id = await conn.fetchval(
        """INSERT INTO wallet_events (tenant_id, wallet_id, kind, dedupe, data) VALUES ($1, $2, $3, $4, $5::jsonb)
           ON CONFLICT (dedupe) DO NOTHING RETURNING id""",
        tenant_id,
        wallet_id,
        kind,
        dedupe,
        json.dumps({"type": kind, "walletId": str(wallet_id), **data}),
    )
    if event_id is None:
        return None
    await conn.execute(
        """INSERT INTO webhook_deliveries (endpoint_id, event_id)
           SELECT id, $1 FROM webhook_endpoints
           WHERE active AND tenant_id IS NOT DISTINCT FROM $2 AND ($3 = ANY(events) OR '*' = ANY(events))""",
        event_id,
        tenant_id,
        kind,
    )
    return int(event_id)


def crossed(used: int, cap: int) -> list[int]:
    """Low-budget percentages reached by ``used`` of ``cap``."""
    if cap <= 0:
        return list(LOW_BUDGET_STEPS)
    return [pct for pct in LOW_BUDGET_STEPS if used * 100 >= cap * pct]
