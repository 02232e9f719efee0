"""Webhook endpoints of a tenant: create (secret shown once), read, change, delete, rotate the secret, ping.

The signing secret is sealed under the master key (like wallet keys). A rotation keeps the previous secret for an
overlap window; during it every delivery is signed with both (two ``v1=`` in ``X402-Signature``).
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg

from wallets.custody import Keyring, Sealed
from x402.errors import BadRequest, NotFound, ValidationFailed
from x402.outbound import Refused, check_url
from x402.service.events.outbox import EVENT_TYPES, Event, insert_events
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry
from x402.service.registry.hosts import URL_PATTERN
from x402.service.registry.models import check_http_url

#: Event types an endpoint may subscribe to ("*" = all); pings go to the pinged endpoint whatever its filter.
SUBSCRIBABLE: Final = tuple(t for t in EVENT_TYPES if t != "webhook.ping")
MAX_OVERLAP: Final = 7 * 86400
DEFAULT_OVERLAP: Final = 86400
MAX_ENDPOINTS: Final = 50
#: The URLs the OpenAPI document promises (the registry's pattern): the schema and the server agree exactly.
_URL: Final = re.compile(URL_PATTERN)

_COLUMNS: Final = (
    "id, tenant_id, url, description, events, active, disabled_at, disabled_reason, prev_expires_at, "
    "consecutive_failures, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class Who:
    """The caller of a change: tenant (None without API keys), actor and request id, for scoping and the audit."""

    tenant_id: uuid.UUID | None
    actor: str
    request_id: str | None = None


def aad(endpoint_id: uuid.UUID) -> bytes:
    """What binds a sealed secret to its endpoint."""
    return f"x402-webhook:{endpoint_id}".encode()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def endpoint_json(row: asyncpg.Record) -> dict[str, Any]:
    """An endpoint as the API shows it (never a secret)."""
    rotating = row["prev_expires_at"] is not None and row["prev_expires_at"] > datetime.now(UTC)
    return {
        "id": str(row["id"]),
        "url": row["url"],
        "description": row["description"],
        "events": list(row["events"]),
        "active": row["active"],
        "disabledAt": _iso(row["disabled_at"]),
        "disabledReason": row["disabled_reason"],
        "consecutiveFailures": row["consecutive_failures"],
        "previousSecretExpiresAt": _iso(row["prev_expires_at"]) if rotating else None,
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
    }


def check_events(value: Any) -> list[str]:
    """A valid event-type filter (a non-empty list of known types, or ``["*"]``), 422 otherwise."""
    if not isinstance(value, list) or not value or not all(isinstance(k, str) for k in value):
        raise ValidationFailed("events must be a non-empty list of event types", code="invalid_webhook")
    bad = sorted(set(value) - {*SUBSCRIBABLE, "*"})
    if bad:
        raise ValidationFailed(f"unknown event types {bad}", code="invalid_webhook", known=list(SUBSCRIBABLE))
    return sorted(set(value))


def check_target(url: Any, *, allow_private: bool) -> str:
    """The target URL through the one SSRF guard (``x402/outbound.py``); 422 ``invalid_webhook_url`` otherwise."""
    # the registry's strict URL check (hosts are IDNA labels or IP literals, as the OpenAPI pattern says), then the
    # SSRF guard (no private, loopback or reserved target)
    check_http_url(url, code="invalid_webhook_url")
    assert isinstance(url, str)
    if not _URL.fullmatch(url):
        raise BadRequest("url must be an http(s) URL with a DNS name or IP address host", code="invalid_webhook_url")
    try:
        check_url(url, allow_private=allow_private)
    except Refused as exc:
        raise ValidationFailed(exc.detail, code="invalid_webhook_url", reason=exc.reason) from None
    return url


class Endpoints:
    """Endpoint rows of every tenant; each method scopes by the caller's tenant (another tenant's id is 404)."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring | None, *, allow_private: bool) -> None:
        self.pool = pool
        self.keyring = keyring
        self.allow_private = allow_private

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise ValidationFailed("webhooks need a master key (X402_MASTER_KEY)", code="master_key_missing")
        return self.keyring

    async def create(self, who: Who, url: Any, kinds: Any, description: Any = "") -> tuple[dict[str, Any], str]:
        """A new endpoint and its signing secret (returned once, stored sealed)."""
        ring = self._ring()
        target = check_target(url, allow_private=self.allow_private)
        chosen = ["*"] if kinds is None else check_events(kinds)
        text = _description(description)
        endpoint_id = uuid.uuid4()
        secret = "whsec_" + secrets.token_urlsafe(32)
        sealed = ring.seal(secret.encode(), aad=aad(endpoint_id))
        async with self.pool.acquire() as conn, conn.transaction():
            count = await conn.fetchval(
                "SELECT count(*) FROM webhook_endpoints WHERE tenant_id IS NOT DISTINCT FROM $1", who.tenant_id
            )
            if count >= MAX_ENDPOINTS:
                raise ValidationFailed(f"at most {MAX_ENDPOINTS} webhook endpoints", code="too_many_webhooks")
            row = await conn.fetchrow(
                f"""INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, key_id, nonce, ciphertext)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}""",
                endpoint_id,
                who.tenant_id,
                target,
                text,
                chosen,
                sealed.key_id,
                sealed.nonce,
                sealed.ciphertext,
            )
            assert row is not None
            out = endpoint_json(row)
            await _audit(conn, who, "webhook.create", endpoint_id, None, out)
        return out, secret

    async def list_all(self, tenant_id: uuid.UUID | None) -> list[dict[str, Any]]:
        """The tenant's endpoints, oldest first."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at",
            tenant_id,
        )
        return [endpoint_json(r) for r in rows]

    async def get(self, tenant_id: uuid.UUID | None, endpoint_id: uuid.UUID) -> dict[str, Any]:
        """One endpoint of the tenant (404 otherwise)."""
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
            endpoint_id,
            tenant_id,
        )
        if row is None:
            raise NotFound("no such webhook endpoint", code="webhook_not_found")
        return endpoint_json(row)

    async def update(self, who: Who, endpoint_id: uuid.UUID, doc: dict[str, Any]) -> dict[str, Any]:
        """Change url, events, description or ``active``; ``active: true`` re-enables a disabled endpoint."""
        unknown = sorted(set(doc) - {"url", "events", "description", "active"})
        if unknown:
            raise ValidationFailed(f"unknown fields {unknown}", code="invalid_webhook")
        url = check_target(doc["url"], allow_private=self.allow_private) if "url" in doc else None
        # null leaves events and description as they are, like leaving them out
        kinds = check_events(doc["events"]) if doc.get("events") is not None else None
        text = _description(doc["description"]) if doc.get("description") is not None else None
        active = doc.get("active")
        if "active" in doc and not isinstance(active, bool):
            raise ValidationFailed("active must be a boolean", code="invalid_webhook")
        async with self.pool.acquire() as conn, conn.transaction():
            before = await self._locked(conn, who.tenant_id, endpoint_id)
            row = await conn.fetchrow(
                f"""UPDATE webhook_endpoints SET url = coalesce($2, url), events = coalesce($3, events),
                        description = coalesce($4, description), active = coalesce($5, active),
                        -- enabling clears the failure streak; disabling by hand names the owner as the reason
                        consecutive_failures = CASE WHEN $5 IS TRUE THEN 0 ELSE consecutive_failures END,
                        failing_since = CASE WHEN $5 IS TRUE THEN NULL ELSE failing_since END,
                        disabled_at = CASE WHEN $5 IS TRUE THEN NULL WHEN $5 IS FALSE AND active THEN now()
                                           ELSE disabled_at END,
                        disabled_reason = CASE WHEN $5 IS TRUE THEN NULL WHEN $5 IS FALSE AND active THEN 'by owner'
                                               ELSE disabled_reason END,
                        updated_at = now()
                    WHERE id = $1 RETURNING {_COLUMNS}""",
                endpoint_id,
                url,
                kinds,
                text,
                active,
            )
            assert row is not None
            out = endpoint_json(row)
            await _audit(conn, who, "webhook.update", endpoint_id, endpoint_json(before), out)
        return out

    async def delete(self, who: Who, endpoint_id: uuid.UUID) -> None:
        """Remove an endpoint, its queued deliveries and its dead letters."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await self._locked(conn, who.tenant_id, endpoint_id)
            await conn.execute("DELETE FROM webhook_dead_letters WHERE endpoint_id = $1", endpoint_id)
            await conn.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)
            await _audit(conn, who, "webhook.delete", endpoint_id, endpoint_json(before), None)

    async def rotate(self, who: Who, endpoint_id: uuid.UUID, overlap: Any) -> tuple[dict[str, Any], str]:
        """A new secret; the current one keeps signing (alongside) for ``overlap`` seconds, then stops."""
        ring = self._ring()
        seconds = DEFAULT_OVERLAP if overlap is None else overlap
        if isinstance(seconds, float) and seconds.is_integer():
            seconds = int(seconds)  # JSON Schema's integer includes 5.0
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_OVERLAP:
            raise ValidationFailed(f"overlapSeconds must be an integer from 0 to {MAX_OVERLAP}", code="invalid_webhook")
        secret = "whsec_" + secrets.token_urlsafe(32)
        sealed = ring.seal(secret.encode(), aad=aad(endpoint_id))
        async with self.pool.acquire() as conn, conn.transaction():
            before = await self._locked(conn, who.tenant_id, endpoint_id)
            row = await conn.fetchrow(
                f"""UPDATE webhook_endpoints SET prev_key_id = key_id, prev_nonce = nonce,
                        prev_ciphertext = ciphertext, prev_expires_at = now() + $5::interval,
                        key_id = $2, nonce = $3, ciphertext = $4, updated_at = now()
                    WHERE id = $1 RETURNING {_COLUMNS}""",
                endpoint_id,
                sealed.key_id,
                sealed.nonce,
                sealed.ciphertext,
                timedelta(seconds=seconds),
            )
            assert row is not None
            out = endpoint_json(row)
            await _audit(conn, who, "webhook.rotate_secret", endpoint_id, endpoint_json(before), out)
        return out, secret

    async def ping(self, who: Who, endpoint_id: uuid.UUID) -> dict[str, Any]:
        """Queue a ``webhook.ping`` event for this endpoint only (delivered like any event, filters aside)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._locked(conn, who.tenant_id, endpoint_id)
            event = Event("webhook.ping", {"endpointId": str(endpoint_id)}, tenant_id=who.tenant_id)
            await insert_events(conn, [event])
            delivery = await conn.fetchval(
                """WITH e AS (UPDATE provider_events SET dispatched = true WHERE id = $2 RETURNING id, seq)
                   INSERT INTO webhook_deliveries (endpoint_id, event_id, event_seq)
                   SELECT $1, e.id, e.seq FROM e RETURNING id""",
                endpoint_id,
                event.id,
            )
        return {"eventId": str(event.id), "deliveryId": str(delivery)}

    async def _locked(self, conn: Any, tenant_id: uuid.UUID | None, endpoint_id: uuid.UUID) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"""SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2
                FOR UPDATE""",
            endpoint_id,
            tenant_id,
        )
        if row is None:
            raise NotFound("no such webhook endpoint", code="webhook_not_found")
        found: asyncpg.Record = row
        return found


def secrets_of(keyring: Keyring, row: Any, now: datetime) -> list[bytes]:
    """The secrets that sign a delivery: the current one, and the previous one while its overlap runs."""
    out = [keyring.unseal(Sealed.from_row(row), aad=aad(row["id"]))]
    if row["prev_expires_at"] is not None and row["prev_expires_at"] > now and row["prev_ciphertext"] is not None:
        prev = Sealed(row["prev_key_id"], bytes(row["prev_nonce"]), bytes(row["prev_ciphertext"]))
        out.append(keyring.unseal(prev, aad=aad(row["id"])))
    return out


def _description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 500:
        raise ValidationFailed("description must be a string of at most 500 characters", code="invalid_webhook")
    return value


async def _audit(
    conn: Any,
    who: Who,
    action: str,
    endpoint_id: uuid.UUID,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await audit.append(conn, AuditEntry(who.actor, action, "webhook", str(endpoint_id), before, after, who.request_id))


def dumps(value: Sequence[Any] | dict[str, Any]) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))
