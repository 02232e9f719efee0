"""Record dead letters are global (a batch spans tenants), yet a tenant's rows in them are its own: exported with
it, and gone when it is deleted, while another tenant's rows in the same batch stay."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from x402.service.platform import lifecycle
from x402.service.platform.tenants import Actor, TenantStore
from x402.service.platform.tiers import DEFAULT_TIERS
from x402.service.storage.db import create_pool
from x402.service.storage.scope import system_scope

ACTOR = Actor("test: tenant lifecycle")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        with system_scope("test: tenants and the global dead letters"):
            yield pool
    finally:
        await pool.close()


def _record(tenant: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "tenant_id": tenant, "kind": "settle", "status": "succeeded"}


def _event(tenant: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "tenantId": tenant, "type": "payment.succeeded", "data": {}}


async def _letter(pool: asyncpg.Pool, records: list[dict[str, Any]], events: list[dict[str, Any]]) -> int:
    letter_id: int = await pool.fetchval(
        "INSERT INTO record_dead_letters (records, events, count, error) VALUES ($1::jsonb, $2::jsonb, $3, 'x')"
        " RETURNING id",
        json.dumps(records),
        json.dumps(events),
        len(records),
    )
    return letter_id


async def _exported(pool: asyncpg.Pool, tenant: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) async for line in lifecycle.export_lines(pool, uuid.UUID(tenant))]
    return [line["row"] for line in lines if line["table"] == "record_dead_letters"]


async def test_deleting_a_tenant_takes_its_rows_out_of_every_dead_letter(pool: asyncpg.Pool) -> None:
    store = TenantStore(pool, frozenset(DEFAULT_TIERS))
    a = (await store.create_tenant("dead-letters-a", "free", ACTOR))["id"]
    b = (await store.create_tenant("dead-letters-b", "free", ACTOR))["id"]
    only_a = await _letter(pool, [_record(a), _record(a)], [_event(a)])
    a_rec, b_rec, anon = _record(a), _record(b), _record(None)  # type: ignore[arg-type]
    mixed = await _letter(pool, [a_rec, b_rec, anon], [_event(a), _event(b)])
    only_b = await _letter(pool, [_record(b)], [])

    # each tenant's export holds its own rows of each letter, never the other's
    exported_a = await _exported(pool, a)
    assert [(p["id"], len(p["records"]), len(p["events"])) for p in exported_a] == [(only_a, 2, 1), (mixed, 1, 1)]
    assert all(r["tenant_id"] == a for p in exported_a for r in p["records"])
    assert [p["id"] for p in await _exported(pool, b)] == [mixed, only_b]

    deleted = await lifecycle.delete_tenant(pool, uuid.UUID(a), ACTOR, confirm=a)
    assert deleted["status"] == "deleted"
    letters = {r["id"]: r for r in await pool.fetch("SELECT * FROM record_dead_letters")}
    assert set(letters) == {mixed, only_b}
    kept = letters[mixed]
    assert json.loads(kept["records"]) == [b_rec, anon]
    assert [e["tenantId"] for e in json.loads(kept["events"])] == [b]
    assert kept["count"] == 2
    # nothing of a is left anywhere in them; b's letter is untouched
    assert a not in json.dumps([(r["records"], r["events"]) for r in letters.values()])
    assert json.loads(letters[only_b]["records"])[0]["tenant_id"] == b
    audit = await pool.fetchval("SELECT after FROM audit_log WHERE action = 'tenant.delete' ORDER BY id DESC LIMIT 1")
    assert json.loads(audit)["rowsDeleted"]["record_dead_letters"] == 2
