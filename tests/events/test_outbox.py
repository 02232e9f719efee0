"""The provider-event outbox: events are written in the caller's transaction, once per id, with the envelope."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from x402.service.events.outbox import API_VERSION, Event, insert_events
from x402.service.platform.tenants import Actor, TenantStore


async def test_events_commit_or_roll_back_with_their_transaction(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tenant = uuid.uuid4()
        kept = Event("payment.verified", {"amount": "10"}, tenant_id=tenant)
        async with conn.transaction():
            await insert_events(conn, [kept, kept])  # the same id twice is written once
        tx = conn.transaction()
        await tx.start()
        await insert_events(conn, [Event("payment.settled", {}, tenant_id=tenant)])
        await tx.rollback()  # the cause was not committed, so neither is its event
        rows = await conn.fetch("SELECT id, tenant_id, type, api_version, data, dispatched FROM provider_events")
        assert [(r["id"], r["tenant_id"], r["type"], r["api_version"], r["dispatched"]) for r in rows] == [
            (kept.id, tenant, "payment.verified", API_VERSION, False)
        ]
        assert json.loads(rows[0]["data"]) == {"amount": "10"}
        body = kept.envelope()
        assert set(body) == {"id", "type", "createdAt", "tenantId", "data", "apiVersion"}
        assert body["createdAt"].endswith("Z")
        assert body["tenantId"] == str(tenant)
    finally:
        await conn.close()


async def test_an_unknown_event_type_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(ValueError, match="unknown event types"):
            await insert_events(conn, [Event("payment.teleported", {})])
    finally:
        await conn.close()


async def test_key_changes_are_events_in_the_same_transaction(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = TenantStore(pool, frozenset({"free"}))
        actor = Actor("test")
        tenant = await store.create_tenant("acme", "free", actor)
        tid = uuid.UUID(tenant["id"])
        meta, _secret = await store.create_key(tid, actor, scopes=["verify"], name="k")
        await store.revoke_key(uuid.UUID(meta["id"]), actor, tenant=tid)
        rows = await pool.fetch("SELECT type, tenant_id, data FROM provider_events ORDER BY seq")
        assert [(r["type"], r["tenant_id"]) for r in rows] == [("key.created", tid), ("key.revoked", tid)]
        assert json.loads(rows[0]["data"])["key"]["id"] == meta["id"]
        assert "hash" not in rows[0]["data"]
    finally:
        await pool.close()
