"""Append-only, hash-chained audit log: each row's hash covers the previous hash and the row's content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

#: Every audit writer in every process serialises on this, so the chain stays linear.
AUDIT_LOCK_ID = 0x78343033
GENESIS = b"\x00" * 32

Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened: who did what to which object, before and after (never a secret or a key hash)."""

    actor: str
    action: str
    object_type: str
    object_id: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    request_id: str | None = None


def canonical(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content(row_id: int, at: datetime, e: AuditEntry) -> dict[str, Any]:
    """The part of a row the hash covers."""
    return {
        "id": row_id,
        "at": at.astimezone(UTC).isoformat(),
        "actor": e.actor,
        "action": e.action,
        "objectType": e.object_type,
        "objectId": e.object_id,
        "before": e.before,
        "after": e.after,
        "requestId": e.request_id,
    }


def chain_hash(prev: bytes, body: Mapping[str, Any]) -> bytes:
    """sha256(prev_hash || canonical JSON)."""
    return hashlib.sha256(prev + canonical(body).encode()).digest()


async def append(conn: Conn, entry: AuditEntry) -> int:
    """Append one entry inside the caller's transaction (the lock is released at commit)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_ID)
    prev = await conn.fetchval("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1") or GENESIS
    row_id = int(await conn.fetchval("SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))"))
    # microsecond precision, as Postgres stores it, so the hash recomputes from what was read back
    at = datetime.now(UTC)
    digest = chain_hash(bytes(prev), content(row_id, at, entry))
    await conn.execute(
        """INSERT INTO audit_log (id, at, actor, action, object_type, object_id, before, after, request_id,
                                  prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11)""",
        row_id,
        at,
        entry.actor,
        entry.action,
        entry.object_type,
        entry.object_id,
        None if entry.before is None else canonical(entry.before),
        None if entry.after is None else canonical(entry.after),
        entry.request_id,
        bytes(prev),
        digest,
    )
    return row_id


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        actor=row["actor"],
        action=row["action"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        before=None if row["before"] is None else json.loads(row["before"]),
        after=None if row["after"] is None else json.loads(row["after"]),
        request_id=row["request_id"],
    )


async def rows(conn: Conn) -> AsyncIterator[asyncpg.Record]:
    """Every row in id order (a server-side cursor, so the log can be large)."""
    async with conn.transaction(readonly=True):
        async for row in conn.cursor("SELECT * FROM audit_log ORDER BY id", prefetch=1000):
            yield row


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of walking the chain."""

    ok: bool
    rows: int
    bad_id: int | None = None
    problem: str = ""


async def verify(conn: Conn) -> VerifyReport:
    """Walk the chain from the start; the first row whose links or hash do not hold is reported."""
    prev = GENESIS
    n = 0
    async for row in rows(conn):
        n += 1
        if bytes(row["prev_hash"]) != prev:
            return VerifyReport(False, n, row["id"], "prev_hash does not match the previous row (row removed?)")
        expected = chain_hash(prev, content(row["id"], row["at"], _entry(row)))
        if bytes(row["hash"]) != expected:
            return VerifyReport(False, n, row["id"], "hash does not match the row's content (row edited?)")
        prev = expected
    return VerifyReport(True, n)


def export_line(row: Any) -> str:
    """One row as a JSON line (hashes in hex)."""
    body = content(row["id"], row["at"], _entry(row))
    body["prevHash"] = bytes(row["prev_hash"]).hex()
    body["hash"] = bytes(row["hash"]).hex()
    return canonical(body)
