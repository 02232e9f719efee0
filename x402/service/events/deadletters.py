"""Dead letters (deliveries that failed for the whole retry window) and the delivery log, tenant-scoped.

A replay puts the delivery back in its endpoint's queue (pending, attempts reset, due now) at its original place
(its event's seq): it goes out before anything queued after it. Every replay writes an audit row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from x402.errors import NotFound, ValidationFailed
from x402.service.events.endpoints import Who
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry

MAX_REPLAY: Final = 1000

_LETTER: Final = """
SELECT l.id, l.delivery_id, l.endpoint_id, l.event_id, l.attempts, l.last_error, l.response_code, l.created_at,
       l.replay_count, l.last_replayed_at, p.type, d.status AS delivery_status
FROM webhook_dead_letters l
JOIN webhook_endpoints w ON w.id = l.endpoint_id
JOIN provider_events p ON p.id = l.event_id
LEFT JOIN webhook_deliveries d ON d.id = l.delivery_id
"""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def letter_json(row: asyncpg.Record) -> dict[str, Any]:
    """A dead letter as the API shows it."""
    return {
        "id": str(row["id"]),
        "deliveryId": str(row["delivery_id"]),
        "endpointId": str(row["endpoint_id"]),
        "eventId": str(row["event_id"]),
        "type": row["type"],
        "attempts": row["attempts"],
        "lastError": row["last_error"],
        "responseCode": row["response_code"],
        "deliveryStatus": row["delivery_status"] or "dead",
        "replayCount": row["replay_count"],
        "lastReplayedAt": _iso(row["last_replayed_at"]),
        "createdAt": _iso(row["created_at"]),
    }


def delivery_json(row: asyncpg.Record) -> dict[str, Any]:
    """One delivery in an endpoint's log."""
    return {
        "id": str(row["id"]),
        "eventId": str(row["event_id"]),
        "type": row["type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "responseCode": row["response_code"],
        "latencyMs": row["latency_ms"],
        "responseExcerpt": row["response_excerpt"],
        "lastError": row["last_error"],
        "createdAt": _iso(row["created_at"]),
        "lastAttemptAt": _iso(row["last_attempt_at"]),
        "nextAttemptAt": _iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "deliveredAt": _iso(row["delivered_at"]),
    }


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which dead letters: endpoint, event type, creation time range (all optional)."""

    endpoint_id: uuid.UUID | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, first: int) -> tuple[str, list[Any]]:
        """SQL conditions (parameters numbered from ``first``) and their values."""
        conds: list[str] = []
        args: list[Any] = []
        for cond, value in (
            ("l.endpoint_id = ${}", self.endpoint_id),
            ("p.type = ${}", self.type),
            ("l.created_at >= ${}", self.since),
            ("l.created_at < ${}", self.until),
        ):
            if value is not None:
                args.append(value)
                conds.append(cond.format(first + len(args) - 1))
        return "".join(f" AND {c}" for c in conds), args

    def to_json(self) -> dict[str, Any]:
        """For the audit row."""
        return {
            "endpointId": None if self.endpoint_id is None else str(self.endpoint_id),
            "type": self.type,
            "since": _iso(self.since),
            "until": _iso(self.until),
        }


class DeadLetters:
    """Dead letters and delivery logs; every query is limited to the caller's tenant."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def letters(
        self, tenant_id: uuid.UUID | None, flt: LetterFilter, limit: int, before: int | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; the cursor is the last id of the page."""
        extra, args = flt.where(4)
        rows = await self.pool.fetch(
            f"""{_LETTER} WHERE w.tenant_id IS NOT DISTINCT FROM $1 AND ($3::bigint IS NULL OR l.id < $3){extra}
                ORDER BY l.id DESC LIMIT $2""",
            tenant_id,
            limit + 1,
            before,
            *args,
        )
        more = len(rows) > limit
        page = rows[:limit]
        return [letter_json(r) for r in page], (str(page[-1]["id"]) if more and page else None)

    async def get(self, tenant_id: uuid.UUID | None, letter_id: int) -> dict[str, Any]:
        """One dead letter with the event envelope it carries."""
        row = await self.pool.fetchrow(
            f"""SELECT q.*, p.data::text AS data, p.created_at AS event_created_at, p.api_version, p.tenant_id
                FROM ({_LETTER} WHERE w.tenant_id IS NOT DISTINCT FROM $1 AND l.id = $2) q
                JOIN provider_events p ON p.id = q.event_id""",
            tenant_id,
            letter_id,
        )
        if row is None:
            raise NotFound("no such dead letter", code="dead_letter_not_found")
        import json

        envelope = {
            "id": str(row["event_id"]),
            "type": row["type"],
            "createdAt": _iso(row["event_created_at"]),
            "tenantId": None if row["tenant_id"] is None else str(row["tenant_id"]),
            "data": json.loads(row["data"]),
            "apiVersion": row["api_version"],
        }
        return {**letter_json(row), "event": envelope}

    async def replay_one(self, who: Who, letter_id: int) -> dict[str, Any]:
        """Queue one dead letter's delivery again (audited)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"{_LETTER} WHERE w.tenant_id IS NOT DISTINCT FROM $1 AND l.id = $2 FOR UPDATE OF l",
                who.tenant_id,
                letter_id,
            )
            if row is None:
                raise NotFound("no such dead letter", code="dead_letter_not_found")
            n = await _requeue(conn, [row["id"]])
            await audit.append(
                conn,
                AuditEntry(
                    who.actor,
                    "webhook.dead_letter.replay",
                    "webhook",
                    str(row["endpoint_id"]),
                    None,
                    {"deadLetterId": str(row["id"]), "eventId": str(row["event_id"]), "requeued": n},
                    who.request_id,
                ),
            )
            fresh = await conn.fetchrow(f"{_LETTER} WHERE l.id = $1", row["id"])
        assert fresh is not None
        return letter_json(fresh)

    async def replay_many(self, who: Who, flt: LetterFilter) -> dict[str, Any]:
        """Queue again every dead letter matching ``flt`` (at most MAX_REPLAY, oldest first); one audit row."""
        extra, args = flt.where(3)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""{_LETTER} WHERE w.tenant_id IS NOT DISTINCT FROM $1 AND d.status = 'dead'{extra}
                    ORDER BY l.id LIMIT $2 FOR UPDATE OF l""",
                who.tenant_id,
                MAX_REPLAY,
                *args,
            )
            ids = [r["id"] for r in rows]
            n = await _requeue(conn, ids)
            await audit.append(
                conn,
                AuditEntry(
                    who.actor,
                    "webhook.dead_letter.replay_many",
                    "webhook",
                    "dead-letters",
                    None,
                    {"filter": flt.to_json(), "deadLetterIds": [str(i) for i in ids], "requeued": n},
                    who.request_id,
                ),
            )
        return {"replayed": n, "deadLetterIds": [str(i) for i in ids], "truncated": len(ids) >= MAX_REPLAY}

    async def deliveries(
        self, tenant_id: uuid.UUID | None, endpoint_id: uuid.UUID, status: str | None, limit: int, before: int | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """An endpoint's delivery log, newest first (404 for another tenant's endpoint)."""
        owned = await self.pool.fetchval(
            "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
            endpoint_id,
            tenant_id,
        )
        if owned is None:
            raise NotFound("no such webhook endpoint", code="webhook_not_found")
        rows = await self.pool.fetch(
            """SELECT d.*, p.type FROM webhook_deliveries d JOIN provider_events p ON p.id = d.event_id
               WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2) AND ($3::bigint IS NULL OR d.id < $3)
               ORDER BY d.id DESC LIMIT $4""",
            endpoint_id,
            status,
            before,
            limit + 1,
        )
        more = len(rows) > limit
        page = rows[:limit]
        return [delivery_json(r) for r in page], (str(page[-1]["id"]) if more and page else None)


async def _requeue(conn: Any, letter_ids: list[int]) -> int:
    """Put the letters' deliveries back in their queues; returns deliveries requeued (already pending: 0)."""
    if not letter_ids:
        return 0
    result: str = await conn.execute(
        """UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, first_attempt_at = NULL,
               next_attempt_at = now(), last_error = NULL
           FROM webhook_dead_letters l WHERE l.id = ANY ($1::bigint[]) AND d.id = l.delivery_id
             AND d.status = 'dead'""",
        letter_ids,
    )
    await conn.execute(
        """UPDATE webhook_dead_letters SET replay_count = replay_count + 1, last_replayed_at = now()
           WHERE id = ANY ($1::bigint[])""",
        letter_ids,
    )
    return int(result.rsplit(" ", 1)[-1])


def check_status(value: str | None) -> str | None:
    """A delivery-status filter."""
    if value in (None, ""):
        return None
    if value not in ("pending", "delivered", "dead"):
        raise ValidationFailed("status must be pending, delivered or dead", code="invalid_query")
    return value
