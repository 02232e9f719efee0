"""Dead-lettered payment records: list them, replay one or all, and retry them in the background.

A replay writes the batch's records and events with the same ids (``ON CONFLICT DO NOTHING``), in one transaction
with marking the dead letter replayed, so replaying twice, or a replay racing the background retry, writes nothing
twice.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.logs import get_logger
from x402.service.platform.writer import DB_ERRORS, describe
from x402.service.storage.scope import system_scope

log = get_logger("x402.service.platform.deadletters")
Conn = asyncpg.Connection | PoolConnectionProxy

# resource_id resolved as the writer does (no trigger since migration 0040); a dead letter's rows never carry one
_RECORDS: Final = """INSERT INTO payments SELECT q.* FROM jsonb_populate_recordset(NULL::payments, $1::jsonb) r,
    LATERAL jsonb_populate_record(r, jsonb_build_object('resource_id', coalesce(r.resource_id, CASE
        WHEN r.resource <> '' THEN x402_payment_resource_id(r.tenant_id, r.resource, r.method) END))) q
    ON CONFLICT (id) DO NOTHING"""
_EVENTS: Final = """INSERT INTO provider_events (id, tenant_id, type, api_version, data, created_at)
    SELECT (e->>'id')::uuid, (e->>'tenantId')::uuid, e->>'type', e->>'apiVersion', e->'data',
           (e->>'createdAt')::timestamptz
      FROM jsonb_array_elements($1::jsonb) AS e
    ON CONFLICT (id) DO NOTHING"""
_LIST: Final = """SELECT id, count, error, attempts, last_error, created_at, last_attempt_at, replayed_at
    FROM record_dead_letters WHERE $1 = 'all' OR ($1 = 'open') = (replayed_at IS NULL) ORDER BY id LIMIT $2"""
_ONE: Final = """SELECT id, count, error, attempts, last_error, created_at, last_attempt_at, replayed_at
    FROM record_dead_letters WHERE id=$1"""
#: One tenant's share of every dead letter holding its rows (``$1``: tenant id as text): what stays, what is its.
_PARTS: Final = """SELECT d.id,
       COALESCE((SELECT jsonb_agg(r) FROM jsonb_array_elements(d.records) r
                 WHERE r->>'tenant_id' IS DISTINCT FROM $1), '[]') AS other_records,
       COALESCE((SELECT jsonb_agg(e) FROM jsonb_array_elements(d.events) e
                 WHERE e->>'tenantId' IS DISTINCT FROM $1), '[]') AS other_events,
       COALESCE((SELECT jsonb_agg(r) FROM jsonb_array_elements(d.records) r WHERE r->>'tenant_id' = $1), '[]')
           AS records,
       COALESCE((SELECT jsonb_agg(e) FROM jsonb_array_elements(d.events) e WHERE e->>'tenantId' = $1), '[]')
           AS events,
       d.count, d.error, d.attempts, d.last_error, d.created_at, d.last_attempt_at, d.replayed_at
  FROM record_dead_letters d
 WHERE d.records @> jsonb_build_array(jsonb_build_object('tenant_id', $1))
    OR d.events @> jsonb_build_array(jsonb_build_object('tenantId', $1))
 ORDER BY d.id"""
_ONE_FULL: Final = """SELECT id, count, error, attempts, last_error, created_at, last_attempt_at, replayed_at,
           records, events
    FROM record_dead_letters WHERE id=$1"""


def _json(row: asyncpg.Record) -> dict[str, Any]:
    def ts(name: str) -> str | None:
        value = row[name]
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {
        "id": row["id"],
        "count": row["count"],
        "error": row["error"],
        "attempts": row["attempts"],
        "lastError": row["last_error"],
        "createdAt": ts("created_at"),
        "lastAttemptAt": ts("last_attempt_at"),
        "replayedAt": ts("replayed_at"),
        "status": "open" if row["replayed_at"] is None else "replayed",
    }


async def tenant_parts(conn: Conn, tenant_id: str) -> list[dict[str, Any]]:
    """The dead letters holding rows of this tenant, each with only those rows (what its export shows)."""
    rows = await conn.fetch(_PARTS, tenant_id)  # a global table without RLS: the caller's connection reads it
    return [{**_json(r), "records": json.loads(r["records"]), "events": json.loads(r["events"])} for r in rows]


async def forget_tenant(conn: Conn, tenant_id: str) -> int:
    """Remove this tenant's records and events from every dead letter (in the caller's transaction); a letter left
    with nothing is deleted. A batch spans tenants, so the others' rows stay. Returns how many letters changed."""
    rows = await conn.fetch(_PARTS + " FOR UPDATE OF d", tenant_id)
    for r in rows:
        others = json.loads(r["other_records"])
        if not others and not json.loads(r["other_events"]):
            await conn.execute("DELETE FROM record_dead_letters WHERE id = $1", r["id"])
            continue
        await conn.execute(
            "UPDATE record_dead_letters SET records = $2::jsonb, events = $3::jsonb, count = $4 WHERE id = $1",
            r["id"],
            r["other_records"],
            r["other_events"],
            max(len(others), r["count"] - len(json.loads(r["records"]))),
        )
    return len(rows)


async def list_dead_letters(pool: asyncpg.Pool, *, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
    """Dead letters, oldest first (``status``: open, replayed or all)."""
    with system_scope("record dead letters: a global table the operator reads"):
        rows = await pool.fetch(_LIST, status, limit)
    return [_json(r) for r in rows]


async def get_dead_letter(pool: asyncpg.Pool, letter_id: int) -> dict[str, Any] | None:
    """One dead letter with its records and events, or None."""
    with system_scope("record dead letters: a global table the operator reads"):
        row = await pool.fetchrow(_ONE_FULL, letter_id)
    if row is None:
        return None
    return {**_json(row), "records": json.loads(row["records"]), "events": json.loads(row["events"])}


async def replay(pool: asyncpg.Pool, letter_id: int) -> dict[str, Any] | None:
    """Write one dead letter's rows now; its new state (``status`` replayed, or open with ``lastError``), or None."""
    with system_scope("record dead letters: replaying rows of any tenant"):
        try:
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT records, events, replayed_at FROM record_dead_letters WHERE id=$1 FOR UPDATE", letter_id
                )
                if row is None:
                    return None
                if row["replayed_at"] is None:
                    await conn.execute(_RECORDS, row["records"])
                    await conn.execute(_EVENTS, row["events"])
                    await conn.execute(
                        """UPDATE record_dead_letters SET replayed_at=now(), last_attempt_at=now(),
                                  attempts=attempts+1 WHERE id=$1""",
                        letter_id,
                    )
        except DB_ERRORS as exc:
            log.warning("record_dead_letter_replay_failed", id=letter_id, error=describe(exc))
            try:
                await pool.execute(
                    """UPDATE record_dead_letters SET attempts=attempts+1, last_error=$2, last_attempt_at=now()
                       WHERE id=$1""",
                    letter_id,
                    describe(exc),
                )
            except DB_ERRORS:
                pass  # the database is down: the next pass tries again
        row = await pool.fetchrow(_ONE, letter_id)
    return None if row is None else _json(row)


async def replay_open(pool: asyncpg.Pool, *, limit: int = 100) -> dict[str, int]:
    """Replay every open dead letter (up to ``limit``); counts of replayed and still open."""
    with system_scope("record dead letters: replaying rows of any tenant"):
        ids = [
            r["id"]
            for r in await pool.fetch(
                "SELECT id FROM record_dead_letters WHERE replayed_at IS NULL ORDER BY id LIMIT $1", limit
            )
        ]
    replayed = 0
    for letter_id in ids:
        state = await replay(pool, letter_id)
        replayed += state is not None and state["status"] == "replayed"
    return {"replayed": replayed, "open": len(ids) - replayed}


async def retry_loop(pool: asyncpg.Pool, interval: float) -> None:
    """Replay open dead letters every ``interval`` seconds (a pass that fails is tried again next round)."""
    while True:
        await asyncio.sleep(interval)
        try:
            done = await replay_open(pool)
        except DB_ERRORS as exc:
            log.warning("record_dead_letter_retry_failed", error=describe(exc))
            continue
        if done["replayed"] or done["open"]:
            log.info("record_dead_letters_retried", **done)
