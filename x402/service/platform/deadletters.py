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

from x402.logs import get_logger
from x402.service.platform.writer import DB_ERRORS, describe
from x402.service.storage.scope import system_scope

log = get_logger("x402.service.platform.deadletters")

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
