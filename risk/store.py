"""Persistence of tenant rule documents and address lists (Postgres, or memory), every change audited."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from risk.addresses import normalize_address
from risk.config import InvalidRiskConfig, parse_config

LIST_NAMES = ("allow", "deny", "exchange", "mixer", "exploit")
Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One change to risk rules or lists."""

    tenant_id: str | None
    actor: str
    action: str
    subject: str
    before: Any = None
    after: Any = None


#: An extra audit writer run inside the change's transaction (the platform's hash-chained log plugs in here).
AuditHook = Callable[[Conn, AuditRecord], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AddressLists:
    """Named address sets (normalised) visible to one tenant: global entries plus the tenant's own."""

    lists: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def get(self, name: str) -> frozenset[str]:
        """The set for a list name (empty when absent)."""
        return self.lists.get(name, frozenset())

    def merged(self, other: AddressLists) -> AddressLists:
        """Union of two list collections."""
        names = set(self.lists) | set(other.lists)
        return AddressLists({n: self.get(n) | other.get(n) for n in names})


class RiskStore(Protocol):
    """Where rule documents and address lists live."""

    async def get_config(self, tenant_id: str | None) -> dict[str, Any] | None:
        """The stored rule document of a tenant (None = global), if any."""
        ...

    async def put_config(self, tenant_id: str | None, document: dict[str, Any], *, actor: str) -> int:
        """Validate and store a rule document; returns its new version. Audited."""
        ...

    async def lists_for(self, tenant_id: str | None) -> AddressLists:
        """Global lists plus the tenant's."""
        ...

    async def add_addresses(
        self, tenant_id: str | None, list_name: str, addresses: Iterable[str], *, actor: str, label: str = ""
    ) -> int:
        """Add addresses to a list; returns how many were new. Audited."""
        ...

    async def remove_addresses(
        self, tenant_id: str | None, list_name: str, addresses: Iterable[str], *, actor: str
    ) -> int:
        """Remove addresses from a list; returns how many were there. Audited."""
        ...

    async def audit_trail(self, tenant_id: str | None, limit: int = 100) -> list[AuditRecord]:
        """The newest changes for a tenant, newest first."""
        ...


def _check_list(name: str) -> None:
    if name not in LIST_NAMES:
        raise InvalidRiskConfig(f"unknown list {name!r} (known: {', '.join(LIST_NAMES)})")


def _normalized(addresses: Iterable[str]) -> list[str]:
    out = sorted({normalize_address(a) for a in addresses if a and a.strip()})
    if any(len(a) > 128 for a in out):
        raise InvalidRiskConfig("addresses must be at most 128 characters")
    return out


class MemoryRiskStore:
    """In-process store (tests, single node without Postgres)."""

    def __init__(self) -> None:
        self.configs: dict[str | None, tuple[int, dict[str, Any]]] = {}
        self.entries: dict[tuple[str | None, str], set[str]] = {}
        self.audit: list[AuditRecord] = []

    async def get_config(self, tenant_id: str | None) -> dict[str, Any] | None:
        """Stored document, if any."""
        item = self.configs.get(tenant_id)
        return None if item is None else item[1]

    async def put_config(self, tenant_id: str | None, document: dict[str, Any], *, actor: str) -> int:
        """Validate, store, audit."""
        parse_config(document)
        before = self.configs.get(tenant_id)
        version = (before[0] if before else 0) + 1
        self.configs[tenant_id] = (version, document)
        self.audit.append(
            AuditRecord(tenant_id, actor, "risk.config.put", "rules", before[1] if before else None, document)
        )
        return version

    async def lists_for(self, tenant_id: str | None) -> AddressLists:
        """Global plus tenant entries."""
        out: dict[str, set[str]] = {}
        for (tenant, name), addrs in self.entries.items():
            if tenant is None or tenant == tenant_id:
                out.setdefault(name, set()).update(addrs)
        return AddressLists({n: frozenset(a) for n, a in out.items()})

    async def add_addresses(
        self, tenant_id: str | None, list_name: str, addresses: Iterable[str], *, actor: str, label: str = ""
    ) -> int:
        """Add and audit."""
        _check_list(list_name)
        addrs = _normalized(addresses)
        bucket = self.entries.setdefault((tenant_id, list_name), set())
        new = [a for a in addrs if a not in bucket]
        bucket.update(new)
        self.audit.append(AuditRecord(tenant_id, actor, "risk.list.add", list_name, None, {"addresses": new}))
        return len(new)

    async def remove_addresses(
        self, tenant_id: str | None, list_name: str, addresses: Iterable[str], *, actor: str
    ) -> int:
        """Remove and audit."""
        _check_list(list_name)
        bucket = self.entries.get((tenant_id, list_name), set())
        gone = [a for a in _normalized(addresses) if a in bucket]
        bucket.difference_update(gone)
        self.audit.append(AuditRecord(tenant_id, actor, "risk.list.remove", list_name, {"addresses": gone}, None))
        return len(gone)

    async def audit_trail(self, tenant_id: str | None, limit: int = 100) -> list[AuditRecord]:
        """Newest first."""
        return [r for r in reversed(self.audit) if r.tenant_id == tenant_id][:limit]


class PgRiskStore:
    """Postgres store (tables from migration 0005); changes and their audit rows commit together."""

    def __init__(self, pool: asyncpg.Pool, *, audit_hook: AuditHook | None = None) -> None:
        self.pool = pool
        self.audit_hook = audit_hook

    async def _audit(self, conn: Conn, rec: AuditRecord) -> None:
        await conn.execute(
            """INSERT INTO risk_audit (tenant_id, actor, action, subject, before, after)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)""",
            rec.tenant_id,
            rec.actor,
            rec.action,
            rec.subject,
            None if rec.before is None else json.dumps(rec.before),
            None if rec.after is None else json.dumps(rec.after),
        )
        if self.audit_hook is not None:
            await self.audit_hook(conn, rec)

    async def get_config(self, tenant_id: str | None) -> dict[str, Any] | None:
        """Stored document, if any."""
        raw = await self.pool.fetchval(
            "SELECT document FROM risk_rule_configs WHERE COALESCE(tenant_id, '') = COALESCE($1, '')", tenant_id
        )
        return None if raw is None else dict(json.loads(raw))

    async def put_config(self, tenant_id: str | None, document: dict[str, Any], *, actor: str) -> int:
        """Validate, upsert, audit (one transaction)."""
        parse_config(document)
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval(
                """SELECT document FROM risk_rule_configs WHERE COALESCE(tenant_id, '') = COALESCE($1, '')
                   FOR UPDATE""",
                tenant_id,
            )
            version = await conn.fetchval(
                """INSERT INTO risk_rule_configs (tenant_id, document, updated_by) VALUES ($1, $2::jsonb, $3)
                   ON CONFLICT ((COALESCE(tenant_id, ''))) DO UPDATE
                   SET document = EXCLUDED.document, version = risk_rule_configs.version + 1,
                       updated_by = EXCLUDED.updated_by, updated_at = now()
                   RETURNING version""",
                tenant_id,
                json.dumps(document),
                actor,
            )
            old = None if before is None else json.loads(before)
            await self._audit(conn, AuditRecord(tenant_id, actor, "risk.config.put", "rules", old, document))
        return int(version)

    async def lists_for(self, tenant_id: str | None) -> AddressLists:
        """Global plus tenant entries."""
        rows = await self.pool.fetch(
            "SELECT list, address FROM risk_address_lists WHERE tenant_id IS NULL OR tenant_id = $1", tenant_id
        )
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r["list"], set()).add(r["address"])
        return AddressLists({n: frozenset(a) for n, a in out.items()})

    async def add_addresses(
        self, tenant_id: str | None, list_name: str, addresses: Iterable[str], *, actor: str, label: str = ""
    ) -> int:
        """Insert the new ones, audit."""
        _check_list(list_name)
        addrs = _normalized(addresses)
        async with self.pool.acquire() as conn, conn.transaction():
            added = await conn.fetch(
                """INSERT INTO risk_address_lists (tenant_id, list, address, label, created_by)
                   SELECT $1, $2, a, $4, $5 FROM unnest($3::text[]) AS a
                   ON CONFLICT DO NOTHING RETURNING address""",
                tenant_id,
                list_name,
                addrs,
                label,
                actor,
            )
            new = [r["address"] for r in added]
            await self._audit(conn, AuditRecord(tenant_id, actor, "risk.list.add", list_name, None, {"addresses": new}))
        return len(new)

    async def remove_addresses(
        self, tenant_id: str | None, list_name: str, addresses: Iterable[str], *, actor: str
    ) -> int:
        """Delete, audit."""
        _check_list(list_name)
        addrs = _normalized(addresses)
        async with self.pool.acquire() as conn, conn.transaction():
            gone = await conn.fetch(
                """DELETE FROM risk_address_lists
                   WHERE COALESCE(tenant_id, '') = COALESCE($1, '') AND list = $2 AND address = ANY($3::text[])
                   RETURNING address""",
                tenant_id,
                list_name,
                addrs,
            )
            old = [r["address"] for r in gone]
            await self._audit(
                conn, AuditRecord(tenant_id, actor, "risk.list.remove", list_name, {"addresses": old}, None)
            )
        return len(old)

    async def audit_trail(self, tenant_id: str | None, limit: int = 100) -> list[AuditRecord]:
        """Newest first."""
        rows = await self.pool.fetch(
            """SELECT * FROM risk_audit WHERE COALESCE(tenant_id, '') = COALESCE($1, '') ORDER BY id DESC LIMIT $2""",
            tenant_id,
            limit,
        )
        return [
            AuditRecord(
                r["tenant_id"],
                r["actor"],
                r["action"],
                r["subject"],
                None if r["before"] is None else json.loads(r["before"]),
                None if r["after"] is None else json.loads(r["after"]),
            )
            for r in rows
        ]
