"""Tenant lifecycle: suspend / reactivate, a full JSON-lines export, and deletion that crypto-shreds wallet keys.

Which tables hold a tenant's rows is read from the catalogue, not listed by hand: every table with a
``tenant_id`` column, plus every table reaching such a table through a foreign key (``wallet_keys`` through
``wallets``, ...) or through one of the ``LINKS`` below, so a table added later is exported and deleted too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from x402.errors import BadRequest, NotFound
from x402.service.platform import audit, deadletters
from x402.service.platform.audit import AuditEntry, Conn
from x402.service.platform.tenants import Actor, tenant_json

#: Tenant links the schema has no foreign key for: table -> (column, parent table, parent column).
LINKS: dict[str, tuple[str, str, str]] = {
    "webhook_dead_letters": ("endpoint_id", "webhook_endpoints", "id"),
}
#: Tables that hold no tenant's rows (shared ledgers, the audit chain, bookkeeping).
GLOBAL_TABLES = frozenset(
    {
        "schema_migrations",
        "settlements",
        "verified_transactions",
        "audit_log",
        "nonce_fills",
        "trust_scores",
        "trust_watermark",
        "siwx_nonces",
        "record_dead_letters",  # batches span tenants: a tenant's rows inside them go through deadletters.py
    }
)
#: Columns never exported: key hashes, sealed keys and secrets, stored replies (they may echo a secret).
REDACTED_COLUMNS = frozenset({"hash", "nonce", "ciphertext", "response_body"})
REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class TenantTable:
    """A table holding tenant rows and the SQL condition selecting one tenant's (``$1`` = tenant id as text)."""

    name: str
    condition: str
    parents: tuple[str, ...] = ()


async def tenant_tables(conn: Conn) -> list[TenantTable]:
    """Every table with tenant rows, parents before children (the order an import would need)."""
    direct = {
        r["table_name"]
        for r in await conn.fetch(
            """SELECT table_name FROM information_schema.columns
               WHERE table_schema = current_schema() AND column_name = 'tenant_id'"""
        )
    }
    fks = await conn.fetch(
        """SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent,
                  array_agg(a.attname ORDER BY k.n) AS cols, array_agg(af.attname ORDER BY k.n) AS parent_cols
           FROM pg_constraint c
           CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(col, pcol, n)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
           JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = k.pcol
           WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
           GROUP BY c.oid, c.conrelid, c.confrelid"""
    )
    links: list[tuple[str, str, list[str], list[str]]] = [
        (r["child"], r["parent"], list(r["cols"]), list(r["parent_cols"])) for r in fks
    ]
    links += [(child, parent, [col], [pcol]) for child, (col, parent, pcol) in LINKS.items()]
    tables: dict[str, TenantTable] = {"tenants": TenantTable("tenants", "id::text = $1")}
    for name in sorted(direct - {"tenants"}):
        tables[name] = TenantTable(name, "tenant_id::text = $1")
    # a table without its own tenant_id belongs to the tenant through any parent that does (to a fixed point)
    grown = True
    while grown:
        grown = False
        for child in sorted({c for c, *_ in links} - set(tables)):
            via = [(p, cols, pcols) for c, p, cols, pcols in links if c == child and p in tables]
            if not via:
                continue
            conds = [
                f"({', '.join(cols)}) IN (SELECT {', '.join(pcols)} FROM {p} WHERE {tables[p].condition})"
                for p, cols, pcols in via
            ]
            tables[child] = TenantTable(child, " OR ".join(conds), tuple(p for p, _, _ in via))
            grown = True
    return _ordered(tables, links)


def _ordered(tables: dict[str, TenantTable], links: list[tuple[str, str, list[str], list[str]]]) -> list[TenantTable]:
    """Parents first: a table comes after every tenant table it references."""
    deps = {name: {p for c, p, *_ in links if c == name and p in tables and p != name} for name in tables}
    out: list[TenantTable] = []
    done: set[str] = set()
    while len(out) < len(tables):
        ready = sorted(n for n in tables if n not in done and deps[n] <= done)
        if not ready:  # a reference cycle: take the rest in name order
            ready = sorted(set(tables) - done)
        for n in ready:
            out.append(tables[n])
            done.add(n)
    return out


async def _scope(conn: Conn, tenant_id: uuid.UUID) -> None:
    # the per-transaction tenant setting row-level security policies read (harmless where there are none)
    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))


def _value(column: str, value: Any, type_name: str) -> Any:
    if value is None:
        return None
    if column in REDACTED_COLUMNS or "secret" in column:
        return REDACTED
    if isinstance(value, str) and type_name in ("json", "jsonb"):
        return json.loads(value)
    if isinstance(value, Decimal):  # plain digits, never an exponent (amounts: 10000, not 1E+4)
        return str(int(value)) if value == value.to_integral_value() else format(value, "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_value(column, v, "") for v in value]
    return value


async def export_lines(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> AsyncIterator[str]:
    """One tenant's rows as JSON lines ``{"table": ..., "row": ...}`` from one consistent snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await _scope(conn, tenant_id)
        if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id) is None:
            raise NotFound("no such tenant")
        tables = await tenant_tables(conn)
        for table in tables:
            stmt = await conn.prepare(f"SELECT * FROM {table.name} WHERE {table.condition}")
            types = {a.name: a.type.name for a in stmt.get_attributes()}
            async for rec in stmt.cursor(str(tenant_id), prefetch=500):
                row = {k: _value(k, v, types.get(k, "")) for k, v in rec.items()}
                yield json.dumps({"table": table.name, "row": row}, separators=(",", ":"), sort_keys=True)
        # dead-lettered payment records and events of the tenant (a letter's other tenants' rows are not shown)
        for part in await deadletters.tenant_parts(conn, str(tenant_id)):
            yield json.dumps({"table": "record_dead_letters", "row": part}, separators=(",", ":"), sort_keys=True)
        # the audit trail of the tenant and of everything it owns (the chain itself stays whole and global)
        with_id = [t for t in tables if await _has_id(conn, t.name)]
        owned_ids = " UNION ALL ".join(f"SELECT id::text FROM {t.name} WHERE {t.condition}" for t in with_id)
        query = f"""SELECT * FROM audit_log WHERE object_id IN ({owned_ids})
                    OR actor IN (SELECT 'key:' || id FROM api_keys WHERE tenant_id::text = $1) ORDER BY id"""
        async for rec in conn.cursor(query, str(tenant_id), prefetch=500):
            yield audit.canonical({"table": "audit_log", "row": json.loads(audit.export_line(rec))})


async def audit_export(pool: asyncpg.Pool, tenant_id: uuid.UUID, actor: Actor) -> None:
    """Record that someone exported the tenant's data (NotFound for an unknown tenant)."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1 AND status <> 'deleted'", tenant_id) is None:
            raise NotFound("no such tenant")
        await audit.append(
            conn, AuditEntry(actor.name, "tenant.export", "tenant", str(tenant_id), None, None, actor.request_id)
        )


async def _has_id(conn: Conn, table: str) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'id'""",
            table,
        )
    )


async def set_status(pool: asyncpg.Pool, tenant_id: uuid.UUID, status: str, actor: Actor) -> dict[str, Any]:
    """Suspend (``suspended``) or reactivate (``active``) a tenant; audited. A deleted tenant stays deleted."""
    action = {"suspended": "tenant.suspend", "active": "tenant.reactivate"}[status]
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        if before is None or before["status"] == "deleted":
            raise NotFound("no such tenant")
        row = await conn.fetchrow(
            """UPDATE tenants SET status = $2,
                      status_changed_at = CASE WHEN status = $2 THEN status_changed_at ELSE now() END
               WHERE id = $1 RETURNING *""",
            tenant_id,
            status,
        )
        out = tenant_json(row)
        if before["status"] != status:
            await audit.append(
                conn, AuditEntry(actor.name, action, "tenant", out["id"], tenant_json(before), out, actor.request_id)
            )
    return out


async def delete_tenant(pool: asyncpg.Pool, tenant_id: uuid.UUID, actor: Actor, *, confirm: str) -> dict[str, Any]:
    """Delete every row of the tenant (its data key with them: crypto-shred); the tenant row stays as a tombstone."""
    if confirm != str(tenant_id):
        raise BadRequest("confirm must repeat the tenant id", code="confirmation_required")
    async with pool.acquire() as conn, conn.transaction():
        await _scope(conn, tenant_id)
        before = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        if before is None or before["status"] == "deleted":
            raise NotFound("no such tenant")
        tables = await tenant_tables(conn)
        deleted: dict[str, int] = {}
        # children first; destroying tenant_data_keys crypto-shreds every wallet key sealed under the tenant's DEK
        for table in reversed(tables):
            if table.name == "tenants":
                continue
            result = await conn.execute(f"DELETE FROM {table.name} WHERE {table.condition}", str(tenant_id))
            deleted[table.name] = int(result.split()[-1])
        # its payment records and events kept in dead letters (global rows: each batch spans tenants)
        deleted["record_dead_letters"] = await deadletters.forget_tenant(conn, str(tenant_id))
        row = await conn.fetchrow(
            """UPDATE tenants SET status = 'deleted', name = '', status_changed_at = now() WHERE id = $1
               RETURNING *""",
            tenant_id,
        )
        out = tenant_json(row)
        await audit.append(
            conn,
            AuditEntry(
                actor.name,
                "tenant.delete",
                "tenant",
                out["id"],
                tenant_json(before),
                {
                    **out,
                    "rowsDeleted": {k: v for k, v in deleted.items() if v},
                    "dataKeyDestroyed": deleted.get("tenant_data_keys", 0) > 0,
                },
                actor.request_id,
            ),
        )
    return out
