"""Zero-loss recording: records and events commit together; a batch that cannot be written is dead-lettered
(for real: a CHECK constraint the rows violate), retried and replayable; a 503 when even that fails."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from tests.harness.wire import UNCONFIGURED_REQUIREMENTS as REQ
from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant, op
from x402.errors import DatabaseUnavailable
from x402.service.app import create_app
from x402.service.events.outbox import Event
from x402.service.metrics import Metrics
from x402.service.platform import deadletters
from x402.service.platform.recorder import event_type, events_for
from x402.service.platform.writer import PaymentRecord, PaymentWriter
from x402.service.settings import Settings

BAD_NETWORK = "eip155:666"
LETTERS = "/v1/admin/record-dead-letters"


def _rec(network: str = "eip155:8453", **kw: Any) -> PaymentRecord:
    return PaymentRecord(kind="verify", status="valid", network=network, tenant_id=uuid.uuid4(), **kw)


async def _reject(conn: Any, network: str) -> None:
    """A constraint the rows of ``network`` violate: the insert fails in Postgres, not in a mock."""
    await conn.execute(f"ALTER TABLE payments ADD CONSTRAINT reject_net CHECK (network <> '{network}') NOT VALID")


async def test_records_and_events_commit_together(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        writer = PaymentWriter(pool)
        recs = [_rec() for _ in range(300)]
        await asyncio.gather(*(writer.write(r, events_for(r, "https://api.example.com/x")) for r in recs))
        assert await pool.fetchval("SELECT count(*) FROM payments") == 300
        rows = await pool.fetch("SELECT type, tenant_id, data FROM provider_events")
        assert len(rows) == 300
        assert {r["type"] for r in rows} == {"payment.verified"}
        by_id = {r.id: r for r in recs}
        for row in rows:
            data = json.loads(row["data"])
            rec = by_id[uuid.UUID(data["paymentId"])]
            assert row["tenant_id"] == rec.tenant_id
            assert data["resource"] == "https://api.example.com/x"
            assert data["amount"] == "0"
        await writer.close()
    finally:
        await pool.close()


async def test_a_bad_row_is_dead_lettered_alone_and_replayed(database_url: str) -> None:
    """One row violating a CHECK: the batch is split, the others commit, the bad one waits in a dead letter."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    metrics = Metrics.create()
    try:
        await _reject(pool, BAD_NETWORK)
        writer = PaymentWriter(pool, interval=0.05, metrics=metrics)
        good = [_rec() for _ in range(40)]
        bad = _rec(BAD_NETWORK)
        items = [*good[:20], bad, *good[20:]]
        await asyncio.gather(*(writer.write(r, events_for(r)) for r in items))  # every one acknowledged
        assert await pool.fetchval("SELECT count(*) FROM payments") == 40
        assert await pool.fetchval("SELECT count(*) FROM provider_events") == 40
        letters = await deadletters.list_dead_letters(pool)
        assert len(letters) == 1
        assert letters[0]["count"] == 1
        assert "CheckViolation" in letters[0]["error"]
        assert "reject_net" in letters[0]["error"]
        assert metrics.records_dead_lettered._value.get() == 1
        assert metrics.events_dead_lettered._value.get() == 1
        # still refused: the replay fails, is counted, stays open
        state = await deadletters.replay(pool, letters[0]["id"])
        assert state is not None
        assert state["status"] == "open"
        assert state["attempts"] == 1
        assert state["lastError"]
        await pool.execute("ALTER TABLE payments DROP CONSTRAINT reject_net")
        state = await deadletters.replay(pool, letters[0]["id"])
        assert state is not None
        assert state["status"] == "replayed"
        again = await deadletters.replay(pool, letters[0]["id"])  # nothing written twice
        assert again is not None
        assert again["status"] == "replayed"
        assert await pool.fetchval("SELECT count(*) FROM payments WHERE id=$1", bad.id) == 1
        row = await pool.fetchrow("SELECT * FROM payments WHERE id=$1", bad.id)
        assert row is not None
        assert row["network"] == BAD_NETWORK
        assert row["tenant_id"] == bad.tenant_id
        assert row["created_at"] == bad.created_at
        assert await pool.fetchval("SELECT count(*) FROM provider_events WHERE data->>'paymentId'=$1", str(bad.id)) == 1
        await writer.close()
    finally:
        await pool.close()


async def test_no_success_when_even_the_dead_letter_cannot_be_written(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        await _reject(pool, BAD_NETWORK)
        await pool.execute("ALTER TABLE record_dead_letters ADD CONSTRAINT no_letters CHECK (count < 0) NOT VALID")
        writer = PaymentWriter(pool)
        with pytest.raises(DatabaseUnavailable):
            await writer.write(_rec(BAD_NETWORK))
        await writer.write(_rec())  # the writer carries on with what can be written
        assert await pool.fetchval("SELECT count(*) FROM payments") == 1
        await writer.close()
    finally:
        await pool.close()


async def test_a_locked_table_dead_letters_after_bounded_retries(database_url: str) -> None:
    """A table lock outlasting the retries (lock_timeout in the writer's role): the batch is kept, not lost."""
    admin = await asyncpg.connect(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, server_settings={"lock_timeout": "100ms"})
    try:
        writer = PaymentWriter(pool, retries=2)
        rec = _rec()
        async with admin.transaction():
            await admin.execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
            await writer.write(rec, events_for(rec))
        letters = await deadletters.list_dead_letters(pool)
        assert len(letters) == 1
        assert "LockNotAvailable" in letters[0]["error"]
        assert (await deadletters.replay_open(pool)) == {"replayed": 1, "open": 0}
        assert await pool.fetchval("SELECT count(*) FROM payments WHERE id=$1", rec.id) == 1
        await writer.close()
    finally:
        await pool.close()
        await admin.close()


def test_event_types_of_outcomes() -> None:
    def rec(kind: str, status: str, reason: str | None = None) -> PaymentRecord:
        return PaymentRecord(kind=kind, status=status, network="eip155:8453", reason=reason)

    assert event_type(rec("verify", "valid")) == "payment.verified"
    assert event_type(rec("verify", "invalid", "invalid_exact_evm_payload_signature")) == "payment.failed"
    assert event_type(rec("settle", "success")) == "payment.settled"
    assert event_type(rec("settle", "pending", "settlement_pending")) == "payment.pending"
    assert event_type(rec("settle", "failed", "duplicate_settlement")) == "payment.duplicate"
    assert event_type(rec("verify_tx", "verified")) == "payment.verified"
    assert event_type(rec("verify_tx", "invalid", "transaction_already_used")) == "payment.duplicate"
    blocked = events_for(rec("settle", "failed", "risk_blocked"))
    assert [e.type for e in blocked] == ["payment.failed", "risk.blocked"]
    assert blocked[0].data == blocked[1].data
    assert blocked[0].data["reason"] == "risk_blocked"


@pytest.fixture
def dsettings(settings: Settings, redis_url: str) -> Settings:
    from tests.platform.conftest import ADMIN

    return settings.with_(
        require_api_keys=True,
        admin_token=ADMIN,
        redis_url=redis_url,
        reconcile_interval=0,
        dead_letter_retry_interval=0.2,
    )


async def test_verify_is_recorded_with_its_event_before_the_answer(
    dsettings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await aiohttp_client(create_app(dsettings))
    tenant = await new_tenant(client, "acme")
    key = (await new_key(client, tenant))["key"]
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key))
    assert r.status == 200
    assert (await r.json())["isValid"] is False
    # no wait: the answer went out after the commit
    conn = await asyncpg.connect(database_url)
    try:
        rec = await conn.fetchrow("SELECT * FROM payments")
        ev = await conn.fetchrow("SELECT * FROM provider_events WHERE type LIKE 'payment.%'")
    finally:
        await conn.close()
    assert rec is not None
    assert str(rec["tenant_id"]) == tenant
    assert rec["status"] == "invalid"
    assert ev is not None
    assert ev["type"] == "payment.failed"
    assert str(ev["tenant_id"]) == tenant
    data = json.loads(ev["data"])
    assert data["paymentId"] == str(rec["id"])
    assert data["reason"] == rec["reason"]
    assert data["payTo"] == REQ["payTo"]
    assert data["amount"] == "10000"


async def test_dead_letters_over_http_503_retry_and_replay(
    dsettings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    app = create_app(dsettings)
    client = await aiohttp_client(app)
    tenant = await new_tenant(client, "acme")
    key = (await new_key(client, tenant))["key"]
    admin = await asyncpg.connect(database_url)
    try:
        await _reject(admin, REQ["network"])
        # the dead letter cannot be written either: the caller gets a 503 naming Postgres, never a 200
        await admin.execute("ALTER TABLE record_dead_letters ADD CONSTRAINT no_letters CHECK (count < 0) NOT VALID")
        r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key))
        assert r.status == 503, await r.text()
        problem = await r.json()
        assert problem["code"] == "database_unavailable"
        assert problem["dependency"] == "postgres"
        await admin.execute("ALTER TABLE record_dead_letters DROP CONSTRAINT no_letters")
        # now the batch lands in a dead letter and the caller gets its answer
        r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key))
        assert r.status == 200
        assert await admin.fetchval("SELECT count(*) FROM payments") == 0
        # a tenant key does not see dead letters (they mix tenants)
        r = await client.get(LETTERS, headers=bearer(key))
        assert r.status == 403
        listed = await (await client.get(LETTERS, headers=op())).json()
        assert len(listed["data"]) == 1
        assert listed["data"][0]["status"] == "open"
        letter_id = listed["data"][0]["id"]
        one = await (await client.get(f"{LETTERS}/{letter_id}", headers=op())).json()
        assert one["records"][0]["tenant_id"] == tenant
        assert one["events"][0]["type"] == "payment.failed"
        replay = await client.post(f"{LETTERS}/{letter_id}/replay", headers=op())
        assert replay.status == 200
        assert (await replay.json())["status"] == "open"
        metrics = await (await client.get("/metrics")).text()
        assert "x402_payment_records_dead_lettered_total 1.0" in metrics
        # the background retry writes it once the cause is gone
        await admin.execute("ALTER TABLE payments DROP CONSTRAINT reject_net")
        for _ in range(100):
            if await admin.fetchval("SELECT count(*) FROM payments") == 1:
                break
            await asyncio.sleep(0.05)
        assert await admin.fetchval("SELECT count(*) FROM payments") == 1
        assert await admin.fetchval("SELECT count(*) FROM provider_events WHERE type='payment.failed'") == 1
        done = await (await client.get(f"{LETTERS}?status=replayed", headers=op())).json()
        assert len(done["data"]) == 1
        assert (await (await client.post(f"{LETTERS}:replay", headers=op())).json()) == {"replayed": 0, "open": 0}
        assert (await client.get(f"{LETTERS}/999999", headers=op())).status == 404
        assert (await client.get(f"{LETTERS}?status=nope", headers=op())).status == 400
    finally:
        await admin.close()


async def test_event_only_items_are_written(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = PaymentWriter(pool)
        await writer.write(None, [Event("payment.reconciled", {"settlementId": 1})])
        assert await pool.fetchval("SELECT count(*) FROM provider_events") == 1
        await writer.close()
    finally:
        await pool.close()
