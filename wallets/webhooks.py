"""Signed webhooks: endpoints per tenant, a delivery worker with exponential backoff, and a dead-letter table.

Signature header: ``X402-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final

import aiohttp
import asyncpg

from wallets.custody import Keyring, Sealed
from wallets.errors import OutboundRefused
from wallets.events import KINDS
from wallets.outbound import Fetcher
from x402.errors import NotFound, ValidationFailed
from x402.logs import get_logger

log = get_logger("wallets.webhooks")

SIGNATURE_HEADER: Final = "X402-Signature"
#: A claimed delivery is invisible to other workers for this long (a crashed worker's claims come back).
LEASE: Final = 30.0


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The ``X402-Signature`` header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, tolerance: float = 300.0) -> bool:
    """Check a signature header (for receivers and tests): right MAC and a timestamp within ``tolerance``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _aad(endpoint_id: uuid.UUID) -> bytes:
    return f"x402-webhook:{endpoint_id}".encode()


def endpoint_json(row: asyncpg.Record) -> dict[str, Any]:
    """An endpoint as the API shows it (never its secret)."""
    return {
        "id": str(row["id"]),
        "url": row["url"],
        "events": list(row["events"]),
        "active": row["active"],
        "createdAt": row["created_at"].astimezone(UTC).isoformat(),
    }


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Retry schedule: ``base * 2**(attempt-1)`` seconds, capped; dead-lettered after ``max_attempts``."""

    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_cap: float = 3600.0
    interval: float = 1.0
    timeout: float = 10.0
    batch: int = 20


class Webhooks:
    """Endpoint registry and the delivery worker."""

    def __init__(
        self, pool: asyncpg.Pool, keyring: Keyring | None, fetcher: Fetcher, options: DeliveryOptions | None = None
    ) -> None:
        self.pool = pool
        self.keyring = keyring
        self.fetcher = fetcher
        self.options = options or DeliveryOptions()

    async def create(
        self, tenant_id: uuid.UUID | None, url: str, kinds: Sequence[str] | None
    ) -> tuple[dict[str, Any], str]:
        """A new endpoint and its signing secret (shown once; stored sealed under the master key)."""
        if self.keyring is None:
            raise ValidationFailed("webhooks need a master key (X402_MASTER_KEY)", code="master_key_missing")
        self.fetcher.check_url(url)
        chosen = list(kinds or ["*"])
        bad = sorted(set(chosen) - {*KINDS, "*"})
        if bad:
            raise ValidationFailed(f"unknown event types {bad}; known: {list(KINDS)}", code="invalid_webhook")
        endpoint_id = uuid.uuid4()
        secret = "whsec_" + secrets.token_urlsafe(32)
        sealed = self.keyring.seal(secret.encode(), aad=_aad(endpoint_id))
        row = await self.pool.fetchrow(
            """INSERT INTO webhook_endpoints (id, tenant_id, url, events, key_id, nonce, ciphertext)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
            endpoint_id,
            tenant_id,
            url,
            chosen,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )
        assert row is not None
        return endpoint_json(row), secret

    async def list_all(self, tenant_id: uuid.UUID | None) -> list[dict[str, Any]]:
        """The tenant's endpoints."""
        rows = await self.pool.fetch(
            "SELECT * FROM webhook_endpoints WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at", tenant_id
        )
        return [endpoint_json(r) for r in rows]

    async def delete(self, tenant_id: uuid.UUID | None, endpoint_id: uuid.UUID) -> None:
        """Deactivate an endpoint (its queued deliveries stop)."""
        result = await self.pool.execute(
            "UPDATE webhook_endpoints SET active = false WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
            endpoint_id,
            tenant_id,
        )
        if result.endswith(" 0"):
            raise NotFound("no such webhook endpoint", code="webhook_not_found")

    async def dead_letters(self, tenant_id: uuid.UUID | None) -> list[dict[str, Any]]:
        """Deliveries that failed every attempt."""
        rows = await self.pool.fetch(
            """SELECT d.*, e.kind FROM webhook_dead_letters d JOIN webhook_endpoints w ON w.id = d.endpoint_id
               JOIN wallet_events e ON e.id = d.event_id
               WHERE w.tenant_id IS NOT DISTINCT FROM $1 ORDER BY d.id DESC LIMIT 200""",
            tenant_id,
        )
        return [
            {
                "deliveryId": r["delivery_id"],
                "endpointId": str(r["endpoint_id"]),
                "eventId": r["event_id"],
                "type": r["kind"],
                "attempts": r["attempts"],
                "lastError": r["last_error"],
            }
            for r in rows
        ]

    # --------------------------------------------------------------------------------- delivery

    async def run(self) -> None:
        """Deliver due webhooks until cancelled."""
        while True:
            try:
                n = await self.deliver_due()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("webhook_worker_error", error=type(exc).__name__)
                n = 0
            if n < self.options.batch:
                await asyncio.sleep(self.options.interval)

    async def deliver_due(self) -> int:
        """Claim due deliveries (lease, SKIP LOCKED across processes), send them; returns how many were tried.

        A suspended tenant's deliveries are not claimed: they stay pending and go out after reactivation.
        """
        rows = await self.pool.fetch(
            """UPDATE webhook_deliveries d SET attempts = attempts + 1, next_attempt_at = now() + $2::interval
               FROM (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
                       AND NOT EXISTS (SELECT 1 FROM webhook_endpoints we JOIN tenants t ON t.id = we.tenant_id
                                       WHERE we.id = webhook_deliveries.endpoint_id AND t.status <> 'active')
                     ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due,
                    webhook_endpoints w, wallet_events e
               WHERE d.id = due.id AND w.id = d.endpoint_id AND e.id = d.event_id
               RETURNING d.id, d.attempts, d.endpoint_id, d.event_id, w.url, w.active, w.key_id, w.nonce,
                         w.ciphertext, e.kind, e.data, e.created_at""",
            self.options.batch,
            _interval(LEASE),
        )
        if rows:
            await asyncio.gather(*(self._deliver(r) for r in rows))
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        if not row["active"]:
            await self.pool.execute(
                "UPDATE webhook_deliveries SET status = 'dead', last_error = 'endpoint removed' WHERE id = $1",
                row["id"],
            )
            return
        error: str | None
        try:
            error = await self._post(row)
        except Exception as exc:  # a broken endpoint must never stop the worker
            error = f"{type(exc).__name__}"
        if error is None:
            await self.pool.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), last_error = NULL"
                " WHERE id = $1",
                row["id"],
            )
            return
        attempts = int(row["attempts"])
        if attempts >= self.options.max_attempts:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE webhook_deliveries SET status = 'dead', last_error = $2 WHERE id = $1", row["id"], error
                )
                await conn.execute(
                    """INSERT INTO webhook_dead_letters (delivery_id, endpoint_id, event_id, attempts, last_error)
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO NOTHING""",
                    row["id"],
                    row["endpoint_id"],
                    row["event_id"],
                    attempts,
                    error,
                )
            log.warning("webhook_dead_lettered", delivery_id=row["id"], attempts=attempts)
            return
        delay = min(self.options.backoff_base * 2 ** (attempts - 1), self.options.backoff_cap)
        await self.pool.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() + $2::interval, last_error = $3 WHERE id = $1",
            row["id"],
            _interval(delay),
            error,
        )

    async def _post(self, row: asyncpg.Record) -> str | None:
        """Send one delivery; the error text (no secrets) or None on a 2xx."""
        assert self.keyring is not None
        secret = self.keyring.unseal(Sealed.from_row(row), aad=_aad(row["endpoint_id"]))
        data = json.loads(row["data"])
        body = json.dumps(
            {
                "id": f"evt_{row['event_id']}",
                "type": row["kind"],
                "createdAt": row["created_at"].isoformat(),
                "data": data,
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            "X402-Event": row["kind"],
            "X402-Delivery": str(row["id"]),
        }
        try:
            resp = await asyncio.wait_for(self.fetcher.fetch("POST", row["url"], headers, body), self.options.timeout)
        except OutboundRefused as exc:
            return f"refused: {exc.detail}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return f"{type(exc).__name__}"
        except Exception as exc:
            return getattr(exc, "detail", type(exc).__name__)
        if 200 <= resp.status < 300:
            return None
        return f"HTTP {resp.status}"


def _interval(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)
