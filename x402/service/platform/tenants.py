"""Tenants and their API keys in Postgres; every write is audited in the same transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from x402.errors import NotFound, ValidationFailed
from x402.service.events.outbox import Event, insert_events
from x402.service.platform import audit, keys
from x402.service.platform.audit import AuditEntry


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is writing (for the audit log) and which request it came from."""

    name: str
    request_id: str | None = None


def tenant_json(row: Any) -> dict[str, Any]:
    """A tenant as the API shows it."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "tier": row["tier"],
        "status": row["status"],
        "createdAt": row["created_at"].isoformat(),
    }


def key_json(row: Any) -> dict[str, Any]:
    """A key's metadata (never its secret or hash)."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "tenantId": str(row["tenant_id"]),
        "name": row["name"],
        "prefix": row["prefix"],
        "mode": row["mode"],
        "scopes": list(row["scopes"]),
        "createdAt": row["created_at"].isoformat(),
    }
    for col, field in (("revoked_at", "revokedAt"), ("last_used_at", "lastUsedAt")):
        if row[col] is not None:
            out[field] = row[col].isoformat()
    if row["agent"]:
        out["agent"] = True
    return out


def parse_uuid(raw: str) -> uuid.UUID:
    """A path id; anything malformed is simply not found (no oracle for id shapes)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("no such object") from None


_KEY_COLS = "id, tenant_id, name, prefix, scopes, mode, agent, created_at, revoked_at, last_used_at"


class TenantStore:
    """Create, list and change tenants and keys; ``tenant`` arguments scope every read and write."""

    def __init__(self, pool: asyncpg.Pool, tier_names: frozenset[str]) -> None:
        self.pool = pool
        self.tier_names = tier_names

    def _check_tier(self, tier: str) -> None:
        if tier not in self.tier_names:
            raise ValidationFailed(f"unknown tier {tier!r}; known: {sorted(self.tier_names)}", code="unknown_tier")

    async def create_tenant(self, name: str, tier: str, actor: Actor) -> dict[str, Any]:
        """A new active tenant."""
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise ValidationFailed("name must be 1-200 characters", code="invalid_name")
        self._check_tier(tier)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO tenants (id, name, tier) VALUES ($1, $2, $3) RETURNING *", uuid.uuid4(), name, tier
            )
            assert row is not None
            out = tenant_json(row)
            await audit.append(
                conn, AuditEntry(actor.name, "tenant.create", "tenant", out["id"], None, out, actor.request_id)
            )
        return out

    async def list_tenants(self, only: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """Every tenant, or just ``only``."""
        if only is None:
            rows = await self.pool.fetch("SELECT * FROM tenants ORDER BY created_at, id")
        else:
            rows = await self.pool.fetch("SELECT * FROM tenants WHERE id = $1", only)
        return [tenant_json(r) for r in rows]

    async def get_tenant(self, tenant_id: uuid.UUID) -> dict[str, Any]:
        """One tenant or NotFound."""
        row = await self.pool.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        if row is None:
            raise NotFound("no such tenant")
        return tenant_json(row)

    async def find_tenant_by_name(self, name: str) -> dict[str, Any] | None:
        """The oldest tenant with this name, if any."""
        row = await self.pool.fetchrow("SELECT * FROM tenants WHERE name = $1 ORDER BY created_at LIMIT 1", name)
        return None if row is None else tenant_json(row)

    async def set_tier(self, tenant_id: uuid.UUID, tier: str, actor: Actor) -> dict[str, Any]:
        """Move a tenant to another tier."""
        self._check_tier(tier)
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
            if before is None:
                raise NotFound("no such tenant")
            row = await conn.fetchrow("UPDATE tenants SET tier = $2 WHERE id = $1 RETURNING *", tenant_id, tier)
            assert row is not None
            out = tenant_json(row)
            await audit.append(
                conn,
                AuditEntry(
                    actor.name, "tenant.set_tier", "tenant", out["id"], tenant_json(before), out, actor.request_id
                ),
            )
        return out

    async def create_key(
        self,
        tenant_id: uuid.UUID,
        actor: Actor,
        *,
        scopes: list[str],
        mode: str = "live",
        name: str = "",
        agent: bool = False,
    ) -> tuple[dict[str, Any], str]:
        """A new key for the tenant: its metadata and the plaintext (shown once, never stored).

        ``agent`` marks a wallet agent key: limited to the wallets bound to it (none until bound).
        """
        try:
            scopes = keys.check_scopes(scopes)
            new = keys.mint(mode)
        except ValueError as exc:
            raise ValidationFailed(str(exc), code="invalid_key_request") from None
        if not scopes:
            raise ValidationFailed("a key needs at least one scope", code="invalid_key_request")
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1 AND status <> 'deleted'", tenant_id) is None:
                raise NotFound("no such tenant")
            meta = await self._insert_key(conn, tenant_id, new, scopes, name[:200], actor, agent=agent)
        return meta, new.plaintext

    async def _insert_key(
        self,
        conn: Any,
        tenant_id: uuid.UUID,
        new: keys.NewKey,
        scopes: list[str],
        name: str,
        actor: Actor,
        *,
        agent: bool = False,
    ) -> dict[str, Any]:
        row = await conn.fetchrow(
            f"""INSERT INTO api_keys (id, tenant_id, name, prefix, hash, scopes, mode, agent)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_KEY_COLS}""",
            uuid.uuid4(),
            tenant_id,
            name,
            new.prefix,
            new.hash,
            scopes,
            new.mode,
            agent,
        )
        meta = key_json(row)
        await audit.append(
            conn, AuditEntry(actor.name, "key.create", "api_key", meta["id"], None, meta, actor.request_id)
        )
        await insert_events(conn, [Event("key.created", {"key": meta}, tenant_id=tenant_id)])
        return meta

    async def list_keys(self, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        """The tenant's keys (metadata only)."""
        if await self.pool.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id) is None:
            raise NotFound("no such tenant")
        rows = await self.pool.fetch(
            f"SELECT {_KEY_COLS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id
        )
        return [key_json(r) for r in rows]

    async def _locked_key(self, conn: Any, key_id: uuid.UUID, tenant: uuid.UUID | None) -> Any:
        row = await conn.fetchrow(
            f"SELECT {_KEY_COLS} FROM api_keys WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE",
            key_id,
            tenant,
        )
        if row is None:
            raise NotFound("no such key")
        return row

    async def revoke_key(
        self, key_id: uuid.UUID, actor: Actor, *, tenant: uuid.UUID | None, grace: float = 0.0
    ) -> dict[str, Any]:
        """Revoke now (or after ``grace`` seconds); revoking a revoked key keeps the earlier time."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await self._locked_key(conn, key_id, tenant)
            row = await conn.fetchrow(
                f"""UPDATE api_keys SET revoked_at = LEAST(COALESCE(revoked_at, 'infinity'), now() + $2::interval)
                    WHERE id = $1 RETURNING {_KEY_COLS}""",
                key_id,
                timedelta(seconds=grace),
            )
            out = key_json(row)
            await audit.append(
                conn,
                AuditEntry(actor.name, "key.revoke", "api_key", out["id"], key_json(before), out, actor.request_id),
            )
            await insert_events(conn, [Event("key.revoked", {"key": out}, tenant_id=before["tenant_id"])])
        return out

    async def rotate_key(
        self, key_id: uuid.UUID, actor: Actor, *, tenant: uuid.UUID | None, grace: float = 0.0
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """A new key with the same tenant, scopes and mode; the old one stops working after ``grace`` seconds."""
        async with self.pool.acquire() as conn, conn.transaction():
            old = await self._locked_key(conn, key_id, tenant)
            if old["revoked_at"] is not None and old["revoked_at"] <= await conn.fetchval("SELECT now()"):
                raise ValidationFailed("the key is already revoked", code="key_revoked")
            new = keys.mint(old["mode"])
            meta = await self._insert_key(
                conn, old["tenant_id"], new, list(old["scopes"]), old["name"], actor, agent=old["agent"]
            )
            if old["agent"]:  # a rotated agent key stays bound to the same wallets
                await conn.execute(
                    """INSERT INTO wallet_agent_keys (key_id, wallet_id)
                       SELECT $1, wallet_id FROM wallet_agent_keys WHERE key_id = $2""",
                    uuid.UUID(meta["id"]),
                    key_id,
                )
            revoked = await conn.fetchrow(
                f"""UPDATE api_keys SET revoked_at = now() + $2::interval WHERE id = $1 RETURNING {_KEY_COLS}""",
                key_id,
                timedelta(seconds=grace),
            )
            old_meta = key_json(revoked)
            await audit.append(
                conn,
                AuditEntry(
                    actor.name,
                    "key.rotate",
                    "api_key",
                    old_meta["id"],
                    key_json(old),
                    {**old_meta, "replacedBy": meta["id"]},
                    actor.request_id,
                ),
            )
            await insert_events(
                conn, [Event("key.revoked", {"key": old_meta, "replacedBy": meta["id"]}, tenant_id=old["tenant_id"])]
            )
        return meta, new.plaintext, old_meta
