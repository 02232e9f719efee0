"""The payment write path's Postgres work (issue 19): events nobody subscribes to are written dispatched, the
registry listing is resolved in the batch statement (no per-row trigger, migration 0040), and the batch statement
is prepared once per connection whatever the batch size."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from x402.service.events.dispatcher import dispatch
from x402.service.events.outbox import Conn
from x402.service.platform import deadletters
from x402.service.platform.recorder import events_for
from x402.service.platform.writer import _BATCH, PaymentRecord, PaymentWriter, write_batch

URL = "https://api.example.com/report"


def _rec(tenant: uuid.UUID | None, **kw: object) -> PaymentRecord:
    return PaymentRecord(kind="verify", status="valid", network="eip155:8453", tenant_id=tenant, **kw)  # type: ignore[arg-type]


async def _endpoint(conn: Conn, tenant: uuid.UUID | None, events: list[str], active: bool = True) -> None:
    await conn.execute(
        """INSERT INTO webhook_endpoints (id, tenant_id, url, events, key_id, nonce, ciphertext, active)
           VALUES ($1, $2, 'https://hooks.example.com/x', $3, 'k', '\\x00', '\\x00', $4)""",
        uuid.uuid4(),
        tenant,
        events,
        active,
    )


async def test_events_no_endpoint_subscribes_to_are_written_dispatched(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        other_type, star, none, disabled, verified, other_tenant = (uuid.uuid4() for _ in range(6))
        async with pool.acquire() as conn:
            await _endpoint(conn, other_type, ["payment.settled"])
            await _endpoint(conn, star, ["*"])
            await _endpoint(conn, disabled, ["*"], active=False)
            await _endpoint(conn, verified, ["payment.settled", "payment.verified"])
            await _endpoint(conn, None, ["payment.verified"])  # an endpoint of no tenant: only events of no tenant
        writer = PaymentWriter(pool)
        tenants = [other_type, star, none, disabled, verified, other_tenant, None]
        recs = [_rec(t) for t in tenants]
        await asyncio.gather(*(writer.write(r, events_for(r)) for r in recs))
        await writer.close()
        rows = await pool.fetch("SELECT tenant_id, type, dispatched FROM provider_events")
        assert {r["type"] for r in rows} == {"payment.verified"}
        dispatched = {r["tenant_id"]: r["dispatched"] for r in rows}
        assert dispatched == {
            other_type: True,
            star: False,
            none: True,
            disabled: True,
            verified: False,
            other_tenant: True,
            None: False,
        }
        # the dispatcher fans out exactly the subscribed ones, as before
        async with pool.acquire() as conn:
            assert await dispatch(conn) == (3, 3)
            # an endpoint created after an event was dispatched never receives it (unchanged)
            await _endpoint(conn, none, ["*"])
            assert await dispatch(conn) == (0, 0)
        got = await pool.fetch(
            "SELECT w.tenant_id FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id"
        )
        assert sorted(str(r["tenant_id"]) for r in got) == sorted(str(t) for t in (star, verified, None))
        # ...and does receive the events written after it
        r = _rec(none)
        async with pool.acquire() as conn:
            await write_batch(conn, [r], events_for(r))
        later = "SELECT dispatched FROM provider_events WHERE data->>'paymentId' = $1"
        assert await pool.fetchval(later, str(r.id)) is False
    finally:
        await pool.close()


async def test_the_registry_listing_is_resolved_by_the_batch_statement(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        assert await pool.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = 'payments_resource'") == 0
        shop, other = uuid.uuid4(), uuid.uuid4()

        async def listing(tenant: uuid.UUID | None, url: str, method: str) -> uuid.UUID:
            rid: uuid.UUID = await pool.fetchval(
                "INSERT INTO resources (tenant_id, url, method, accepts) VALUES ($1, $2, $3, '[]') RETURNING id",
                tenant,
                url,
                method,
            )
            return rid

        public = await listing(None, URL, "GET")
        own_post = await listing(shop, URL, "POST")
        other_only = await listing(other, URL + "/b", "GET")
        cases = [
            (_rec(shop, resource=URL, method="GET"), public),
            (_rec(shop, resource=URL, method="POST"), own_post),
            (_rec(shop, resource=URL), own_post),  # no method: the tenant's own listing before GET
            (_rec(other, resource=URL, method="GET"), public),
            (_rec(other, resource=URL, method="POST"), None),  # another tenant's listing is never used
            (_rec(other, resource=URL), public),
            (_rec(None, resource=URL), public),
            (_rec(shop, resource=URL + "/b"), None),
            (_rec(other, resource=URL + "/b", method="GET"), other_only),
            (_rec(shop, resource=URL + "/none"), None),
            (_rec(shop), None),
        ]
        writer = PaymentWriter(pool)
        await asyncio.gather(*(writer.write(r) for r, _ in cases))
        await writer.close()
        got = {
            r["id"]: r
            for r in await pool.fetch(
                "SELECT id, resource_id, CASE WHEN resource <> ''"
                " THEN x402_payment_resource_id(tenant_id, resource, method) END AS rule FROM payments"
            )
        }
        for rec, want in cases:
            assert got[rec.id]["resource_id"] == want, rec
            assert got[rec.id]["rule"] == want  # the same rule as migration 0020's function, exactly

        # a dead letter's records are replayed with their listing resolved the same way
        replayed = [_rec(shop, resource=URL), _rec(other, resource=URL)]
        letter = await pool.fetchval(
            "INSERT INTO record_dead_letters (records, events, count, error) VALUES ($1::jsonb, '[]', 2, 'x')"
            " RETURNING id",
            json.dumps([r.json() for r in replayed]),
        )
        assert await deadletters.replay(pool, letter) is not None
        back = {
            r["id"]: r["resource_id"]
            for r in await pool.fetch(
                "SELECT id, resource_id FROM payments WHERE id = ANY($1::uuid[])", [r.id for r in replayed]
            )
        }
        assert back == {replayed[0].id: own_post, replayed[1].id: public}
    finally:
        await pool.close()


async def test_the_batch_statement_is_prepared_once_per_connection(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for size in (1, 2, 7, 30):
            recs = [_rec(uuid.uuid4()) for _ in range(size)]
            await write_batch(conn, recs, [e for r in recs for e in events_for(r)])
        prepared = await conn.fetch("SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'WITH p AS%'")
        assert [r["statement"] for r in prepared] == [_BATCH]
        assert await conn.fetchval("SELECT count(*) FROM payments") == 40
    finally:
        await conn.close()


async def test_the_batch_writes_every_column_as_given(database_url: str) -> None:
    """The batch travels as JSON (jsonb_to_recordset): every column comes back exactly, huge amounts and non-ASCII
    included; a naive created_at is read as local time (as asyncpg reads it); an event's data may be any mapping."""
    from datetime import UTC, datetime
    from types import MappingProxyType

    from x402.service.events.outbox import Event

    tenant = uuid.uuid4()
    aware = PaymentRecord(
        kind="settle", status="success", network="eip155:8453", tenant_id=tenant, asset="0xA",
        payer="0xP", pay_to="0xQ", amount=2**255 + 7, tx="0xT", reason=None,
        created_at=datetime(2026, 3, 1, 10, 15, 30, 123456, tzinfo=UTC),
        resource="https://ex.example/é?q=1", method="POST", latency_ms=3.25, risk="accept", risk_level="low",
        risk_flags="a,b",
    )  # fmt: skip
    naive_at = datetime(2026, 3, 2, 8, 0, 0)
    naive = PaymentRecord(kind="verify", status="invalid", network="eip155:1", reason="x", created_at=naive_at)
    data = MappingProxyType({"k": "v", "n": 1, "none": None})
    event = Event("payment.settled", data, tenant, created_at=aware.created_at)
    conn = await asyncpg.connect(database_url)
    try:
        await write_batch(conn, [aware, naive], [event])
        cols = "id, tenant_id, kind, status, network, asset, payer, pay_to, amount, tx, reason, created_at, resource, "
        cols += "method, latency_ms, risk, risk_level, risk_flags"
        got = await conn.fetchrow(f"SELECT {cols} FROM payments WHERE id = $1", aware.id)
        assert got is not None
        assert tuple(got.values()) == aware.row()  # numeric comes back as Decimal, equal to the int
        assert await conn.fetchval("SELECT created_at FROM payments WHERE id = $1", naive.id) == naive_at.astimezone(
            UTC
        )
        ev = await conn.fetchrow(
            "SELECT tenant_id, type, data, created_at FROM provider_events WHERE id = $1", event.id
        )
        assert ev is not None
        assert (ev["tenant_id"], ev["type"], json.loads(ev["data"]), ev["created_at"]) == (
            tenant, "payment.settled", dict(data), aware.created_at
        )  # fmt: skip
    finally:
        await conn.close()
