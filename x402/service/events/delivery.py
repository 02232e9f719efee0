"""The delivery worker: signed POSTs to endpoints, in order per endpoint, retried with backoff, dead-lettered.

Ordering: a worker leases an endpoint (``lease_until``, claimed with ``FOR UPDATE SKIP LOCKED``, so one process
at a time sends to it) and sends its pending deliveries one after another in event ``seq`` order; it stops at the
first failure. A delivery is therefore never sent while an earlier pending delivery of the same endpoint is
unsent or waiting for a retry. A dead-lettered delivery no longer holds the queue (later ones proceed; a replay puts
it back at its place, the head).

Retries (full jitter): after the n-th failed attempt the next waits a random time in
``[0, min(backoff_cap, backoff_base * 2**n)]`` (defaults 5 s and 1 h). A delivery is dead-lettered once it has
failed at least ``min_attempts`` times (20) AND ``retry_window`` (24 h) has passed since its first attempt.

Auto-disable: an endpoint whose failure streak (failed attempts with no success between) reaches
``disable_failures`` (20) over at least ``disable_window`` (24 h) is disabled, with a ``webhook.disabled`` event to
the tenant's other endpoints and an audit row; ``PATCH /v1/webhooks/{id}`` with ``active: true`` enables it again.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp
import asyncpg

from wallets.custody import Keyring
from x402 import tracing
from x402.logs import get_logger
from x402.outbound import Failed, GuardedClient, Refused
from x402.service.events.dispatcher import dispatch
from x402.service.events.endpoints import secrets_of
from x402.service.events.outbox import Event, insert_events
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry
from x402.webhooks import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign

log = get_logger("x402.service.events.delivery")

EXCERPT: Final = 512


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Retry schedule, auto-disable policy and worker pacing (tests shorten them)."""

    backoff_base: float = 5.0
    backoff_cap: float = 3600.0
    min_attempts: int = 20
    retry_window: float = 86400.0
    disable_failures: int = 20
    disable_window: float = 86400.0
    timeout: float = 10.0
    #: idle pause between passes
    interval: float = 0.2
    endpoints_per_pass: int = 64
    per_endpoint: int = 200
    lease: float = 120.0
    dispatch_batch: int = 1000


def backoff(failures: int, options: DeliveryOptions) -> float:
    """Seconds before the next attempt after ``failures`` failed ones (full jitter)."""
    return random.uniform(0.0, min(options.backoff_cap, options.backoff_base * 2.0 ** min(failures, 40)))  # noqa: S311


_CLAIM: Final = """
UPDATE webhook_endpoints w SET lease_until = now() + $2::interval
FROM (SELECT e.id FROM webhook_endpoints e
      WHERE e.active AND e.lease_until < now()
        AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = e.tenant_id AND t.status <> 'active')
        AND (SELECT d.next_attempt_at FROM webhook_deliveries d
             WHERE d.endpoint_id = e.id AND d.status = 'pending' ORDER BY d.event_seq LIMIT 1) <= now()
      LIMIT $1 FOR UPDATE OF e SKIP LOCKED) due
WHERE w.id = due.id
RETURNING w.id, w.tenant_id, w.url, w.key_id, w.nonce, w.ciphertext, w.prev_key_id, w.prev_nonce, w.prev_ciphertext,
          w.prev_expires_at, w.consecutive_failures, w.failing_since
"""

_QUEUE: Final = """
SELECT d.id, d.event_id, d.attempts, d.first_attempt_at, d.next_attempt_at, p.type, p.tenant_id, p.data::text AS data,
       p.created_at, p.api_version
FROM webhook_deliveries d JOIN provider_events p ON p.id = d.event_id
WHERE d.endpoint_id = $1 AND d.status = 'pending' ORDER BY d.event_seq LIMIT $2
"""

_DELIVERED: Final = """
UPDATE webhook_deliveries d SET status = 'delivered', attempts = d.attempts + 1, delivered_at = u.at,
       first_attempt_at = coalesce(d.first_attempt_at, u.at), last_attempt_at = u.at, response_code = u.code,
       latency_ms = u.ms, response_excerpt = u.excerpt, last_error = NULL
FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::int[], $5::text[]) AS u(id, at, code, ms, excerpt)
WHERE d.id = u.id
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one POST."""

    at: datetime
    ok: bool
    code: int | None
    ms: int
    excerpt: str | None
    error: str | None


def envelope_body(row: Any) -> bytes:
    """The envelope bytes of a queued event (``Event.envelope()``'s shape; ``data`` as stored)."""
    created = row["created_at"].astimezone(UTC).isoformat().replace("+00:00", "Z")
    tenant = "null" if row["tenant_id"] is None else f'"{row["tenant_id"]}"'
    return (
        f'{{"id":"{row["event_id"]}","type":{json.dumps(row["type"])},"createdAt":"{created}",'
        f'"tenantId":{tenant},"data":{row["data"]},"apiVersion":{json.dumps(row["api_version"])}}}'
    ).encode()


class DeliveryWorker:
    """Dispatches and delivers until cancelled; several processes may run one each."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        keyring: Keyring,
        *,
        allow_private: bool,
        options: DeliveryOptions | None = None,
    ) -> None:
        self.pool = pool
        self.keyring = keyring
        self.options = options or DeliveryOptions()
        self.client = GuardedClient(
            allow_private=allow_private, timeout=self.options.timeout, max_bytes=64 * 1024, limit=256
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close()

    async def run(self) -> None:
        """Dispatch and deliver forever; a database hiccup pauses, never ends, the loop."""
        while True:
            try:
                busy = await self.step()
            except Exception as exc:  # a database hiccup or one broken endpoint must never end the worker
                log.warning("webhook_worker_error", error=type(exc).__name__)
                busy = False
            if not busy:
                await asyncio.sleep(self.options.interval)

    async def step(self) -> bool:
        """One dispatch pass and one delivery pass; True when more work is probably waiting (go again without
        pausing): a full dispatch batch, or deliveries sent. A partial batch means the outbox was drained: the next
        pass waits ``interval``, so a steady trickle of events (every verify writes one) is dispatched in batches a
        few times a second, not one pass (eight round trips) per handful of events."""
        async with self.pool.acquire() as conn:
            events, _ = await dispatch(conn, self.options.dispatch_batch)
        sent = await self.deliver_due()
        return events >= self.options.dispatch_batch or sent > 0

    async def deliver_due(self) -> int:
        """Lease endpoints whose queue head is due and send their queues; returns deliveries attempted."""
        endpoints = await self.pool.fetch(
            _CLAIM, self.options.endpoints_per_pass, timedelta(seconds=self.options.lease)
        )
        if not endpoints:
            return 0
        counts = await asyncio.gather(*(self._endpoint(e) for e in endpoints), return_exceptions=True)
        for c in counts:
            if isinstance(c, BaseException):
                log.warning("webhook_endpoint_pass_failed", error=type(c).__name__)
        return sum(c for c in counts if isinstance(c, int))

    async def _endpoint(self, ep: asyncpg.Record) -> int:
        attempts: list[tuple[asyncpg.Record, Attempt]] = []
        try:
            queue = await self.pool.fetch(_QUEUE, ep["id"], self.options.per_endpoint)
            now = datetime.now(UTC)
            signing = secrets_of(self.keyring, ep, now)
            started = time.monotonic()
            for row in queue:
                if row["next_attempt_at"] > datetime.now(UTC):
                    break  # the head waits for its retry; nothing behind it may overtake it
                attempt = await self._post(ep["url"], row, signing)
                attempts.append((row, attempt))
                if not attempt.ok or time.monotonic() - started > self.options.lease / 2:
                    break
        finally:
            await self._record(ep, attempts)
        return len(attempts)

    async def _post(self, url: str, row: asyncpg.Record, signing: list[bytes]) -> Attempt:
        with tracing.span(
            "x402.webhook.deliver", **{"x402.event_type": row["type"], "x402.event_id": str(row["event_id"])}
        ) as sp:
            attempt = await self._post_once(url, row, signing)
            tracing.annotate(sp, **{"http.response.status_code": attempt.code, "x402.delivered": attempt.ok})
            return attempt

    async def _post_once(self, url: str, row: asyncpg.Record, signing: list[bytes]) -> Attempt:
        body = envelope_body(row)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(signing, body),
            EVENT_ID_HEADER: str(row["event_id"]),
            EVENT_TYPE_HEADER: row["type"],
            "X402-Delivery-Id": str(row["id"]),
        }
        at = datetime.now(UTC)
        t0 = time.monotonic()
        code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            fetched = await self.client.fetch("POST", url, headers=headers, data=body)
            code = fetched.status
            excerpt = fetched.body[:EXCERPT].decode("utf-8", "replace")
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except Refused as exc:
            error = f"refused: {exc.reason}"
        except Failed as exc:
            error = exc.reason
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = type(exc).__name__
        ms = int((time.monotonic() - t0) * 1000)
        return Attempt(at, error is None, code, ms, excerpt, error)

    async def _record(self, ep: asyncpg.Record, attempts: list[tuple[asyncpg.Record, Attempt]]) -> None:
        """Write the outcomes, settle the endpoint's failure streak and release its lease, in one transaction."""
        good = [(r, a) for r, a in attempts if a.ok]
        bad = [(r, a) for r, a in attempts if not a.ok]
        async with self.pool.acquire() as conn, conn.transaction():
            if good:
                await conn.execute(
                    _DELIVERED,
                    [r["id"] for r, _ in good],
                    [a.at for _, a in good],
                    [a.code for _, a in good],
                    [a.ms for _, a in good],
                    [a.excerpt for _, a in good],
                )
            for row, attempt in bad:
                await self._failed(conn, ep, row, attempt)
            if bad:
                streak = await conn.fetchrow(
                    """UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + $2,
                           failing_since = coalesce(failing_since, $3), lease_until = '-infinity'
                       WHERE id = $1 RETURNING consecutive_failures, failing_since, tenant_id, url""",
                    ep["id"],
                    len(bad),
                    bad[0][1].at,
                )
                assert streak is not None
                await self._maybe_disable(conn, ep["id"], streak)
            elif good:
                await conn.execute(
                    """UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL,
                           lease_until = '-infinity' WHERE id = $1""",
                    ep["id"],
                )
            else:
                await conn.execute("UPDATE webhook_endpoints SET lease_until = '-infinity' WHERE id = $1", ep["id"])

    async def _failed(self, conn: Any, ep: asyncpg.Record, row: asyncpg.Record, attempt: Attempt) -> None:
        o = self.options
        failures = int(row["attempts"]) + 1
        first = row["first_attempt_at"] or attempt.at
        dead = failures >= o.min_attempts and (attempt.at - first).total_seconds() >= o.retry_window
        await conn.execute(
            """UPDATE webhook_deliveries SET attempts = $2, first_attempt_at = $3, last_attempt_at = $4::timestamptz,
                   response_code = $5, latency_ms = $6, response_excerpt = $7, last_error = $8,
                   status = CASE WHEN $9::boolean THEN 'dead' ELSE 'pending' END,
                   next_attempt_at = $4::timestamptz + $10::interval
               WHERE id = $1""",
            row["id"],
            failures,
            first,
            attempt.at,
            attempt.code,
            attempt.ms,
            attempt.excerpt,
            attempt.error,
            dead,
            timedelta(seconds=0 if dead else backoff(failures, o)),
        )
        if dead:
            await conn.execute(
                """INSERT INTO webhook_dead_letters (delivery_id, endpoint_id, event_id, attempts, last_error,
                                                     response_code)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (delivery_id) DO UPDATE SET attempts = EXCLUDED.attempts,
                       last_error = EXCLUDED.last_error, response_code = EXCLUDED.response_code, created_at = now()""",
                row["id"],
                ep["id"],
                row["event_id"],
                failures,
                attempt.error,
                attempt.code,
            )
            log.warning("webhook_dead_lettered", delivery_id=row["id"], attempts=failures)

    async def _maybe_disable(self, conn: Any, endpoint_id: uuid.UUID, streak: asyncpg.Record) -> None:
        o = self.options
        span = (datetime.now(UTC) - streak["failing_since"]).total_seconds()
        if streak["consecutive_failures"] < o.disable_failures or span < o.disable_window:
            return
        reason = f"{streak['consecutive_failures']} consecutive failed deliveries over {int(span)} s"
        await conn.execute(
            """UPDATE webhook_endpoints SET active = false, disabled_at = now(), disabled_reason = $2,
                   updated_at = now() WHERE id = $1""",
            endpoint_id,
            reason,
        )
        data = {"endpointId": str(endpoint_id), "url": streak["url"], "reason": reason}
        await insert_events(conn, [Event("webhook.disabled", data, tenant_id=streak["tenant_id"])])
        await audit.append(
            conn,
            AuditEntry("system:webhooks", "webhook.disable", "webhook", str(endpoint_id), None, data),
        )
        log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint_id), failures=streak["consecutive_failures"])
