"""The provider-event envelope and the outbox insert that writes events in the caller's transaction.

Every event a tenant can subscribe to goes through ``insert_events``, inside the transaction that records what it
reports, so an event exists exactly when its cause was committed. Delivery reads ``provider_events`` afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.ids import fast_uuid
from x402.webhooks import API_VERSION as API_VERSION

Conn = asyncpg.Connection | PoolConnectionProxy


#: Every provider event type (issue 15); the wallet events keep their names under the same envelope.
EVENT_TYPES: Final = (
    "payment.verified",
    "payment.settled",
    "payment.failed",
    "payment.pending",
    "payment.reconciled",
    "payment.duplicate",
    "risk.blocked",
    "quota.threshold",
    "quota.exceeded",
    "resource.down",
    "resource.up",
    "key.created",
    "key.revoked",
    "payment.made",
    "payment.resolved",
    "wallet.low_budget",
    "wallet.paused",
    "wallet.resumed",
    "webhook.disabled",
    "webhook.ping",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One provider event: what receivers get as ``{id, type, createdAt, tenantId, data, apiVersion}``."""

    type: str
    data: Mapping[str, Any]
    tenant_id: uuid.UUID | None = None
    id: uuid.UUID = field(default_factory=fast_uuid)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def envelope(self) -> dict[str, Any]:
        """The JSON body a receiver gets."""
        return {
            "id": str(self.id),
            "type": self.type,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "tenantId": None if self.tenant_id is None else str(self.tenant_id),
            "data": dict(self.data),
            "apiVersion": API_VERSION,
        }


_INSERT: Final = (
    "INSERT INTO provider_events (id, tenant_id, type, api_version, data, created_at) "
    "SELECT i, t, ty, $4, d::jsonb, c FROM unnest($1::uuid[], $2::uuid[], $3::text[], $5::text[], $6::timestamptz[])"
    " AS u(i, t, ty, d, c) ON CONFLICT (id) DO NOTHING"
)


async def insert_events(conn: Conn, events: Sequence[Event]) -> None:
    """Write ``events`` in one statement, in the caller's transaction; an event id already written is skipped."""
    if not events:
        return
    unknown = {e.type for e in events} - set(EVENT_TYPES)
    if unknown:
        raise ValueError(f"unknown event types: {sorted(unknown)}")
    await conn.execute(
        _INSERT,
        [e.id for e in events],
        [e.tenant_id for e in events],
        [e.type for e in events],
        API_VERSION,
        [json.dumps(dict(e.data), separators=(",", ":")) for e in events],
        [e.created_at for e in events],
    )
