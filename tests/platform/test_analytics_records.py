"""Payment records carry the resource, method, latency and risk outcome; migration 0020 backfills older records."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.platform.conftest import REQ, VERIFY_BODY, bearer, new_key, new_tenant
from x402.service.analytics.folder import fold_all, fold_pending
from x402.service.appkeys import PLATFORM
from x402.service.platform.writer import PaymentRecord
from x402.service.storage.db import load_migrations, migrate
from x402.service.storage.scope import system_scope

URL = "https://shop.example/report"


async def test_verify_records_the_resource_method_and_latency(client: Any) -> None:
    tenant = await new_tenant(client, "shop")
    h = bearer((await new_key(client, tenant, ["verify"]))["key"])
    base: dict[str, Any] = VERIFY_BODY["paymentPayload"]  # type: ignore[assignment]
    payload = {
        **base,
        "resource": {"url": URL},
        "extensions": {"bazaar": {"info": {"input": {"type": "http", "method": "post"}}}},
    }
    r = await client.post("/verify", json={**VERIFY_BODY, "paymentPayload": payload}, headers=h)
    assert r.status == 200, await r.text()
    await client.post("/verify", json=VERIFY_BODY, headers=h)  # names no resource
    await client.app[PLATFORM].writer.close()
    pool = client.app[PLATFORM].store.pool
    await fold_all(pool)
    with system_scope("test: read the records as the owner would"):
        rows = await pool.fetch("SELECT resource, method, latency_ms, status, amount FROM payments ORDER BY created_at")
        rolled = await pool.fetch("SELECT resource, total, failed FROM analytics_hourly ORDER BY resource")
    assert [(x["resource"], x["method"], x["status"], int(x["amount"])) for x in rows] == [
        (URL, "POST", "invalid", int(REQ["amount"])),
        ("", "", "invalid", int(REQ["amount"])),
    ]
    assert all(x["latency_ms"] is not None and x["latency_ms"] >= 0 for x in rows)
    # the invalid verifies are failed payments of the resource in the hourly rollup (one row per resource)
    assert [(x["resource"], x["total"], x["failed"]) for x in rolled] == [("", 1, 1), (URL, 1, 1)]


async def _migrate_to(conn: asyncpg.Connection, below: int) -> None:
    await conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for mg in await asyncio.to_thread(load_migrations):
        if mg.version < below:
            await conn.execute(mg.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", mg.version, mg.name)


async def test_migration_backfills_resources_from_the_journal_and_the_registry(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await _migrate_to(conn, 20)
        tenant = uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'shop')", tenant)
        at = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)

        async def listing(url: str, method: str, pay_to: str, amount: str) -> uuid.UUID:
            accepts = json.dumps([{"scheme": "exact", "network": "eip155:8453", "payTo": pay_to, "amount": amount}])
            rid: uuid.UUID = await conn.fetchval(
                """INSERT INTO resources (tenant_id, url, method, accepts, pay_to) VALUES ($1, $2, $3, $4, $5)
                   RETURNING id""",
                tenant,
                url,
                method,
                accepts,
                [pay_to],
            )
            return rid

        report = await listing(URL, "POST", "0xreport", "1")
        pricey = await listing("https://shop.example/pricey", "GET", "0xshop", "777")
        await listing("https://shop.example/a", "GET", "0xtwice", "555")
        await listing("https://shop.example/b", "GET", "0xtwice", "555")

        async def settlement(tx: str, payload: dict[str, Any], requirements: dict[str, Any], version: int) -> None:
            await conn.execute(
                """INSERT INTO settlements (network, asset, payer, nonce, payload_hash, status, pay_to, amount, tx_id,
                                            x402_version, payload, requirements)
                   VALUES ('eip155:8453', '0xusdc', '0xpayer', $1, '\\x00', 'confirmed', '0xreport', 1, $1, $2, $3,
                           $4)""",
                tx,
                version,
                json.dumps(payload),
                json.dumps(requirements),
            )

        bazaar = {"bazaar": {"info": {"input": {"type": "http", "method": "post"}}}}
        await settlement("0xaaa", {"resource": {"url": URL}, "extensions": bazaar}, {}, 2)
        await settlement("0xbbb", {}, {"resource": "https://shop.example/v1"}, 1)

        async def record(kind: str, status: str, pay_to: str, amount: int, tx: str | None = None) -> uuid.UUID:
            rid = uuid.uuid4()
            await conn.execute(
                """INSERT INTO payments (id, tenant_id, kind, status, network, asset, payer, pay_to, amount, tx,
                                         created_at)
                   VALUES ($1, $2, $3, $4, 'eip155:8453', '0xusdc', '0xpayer', $5, $6, $7, $8)""",
                rid,
                tenant,
                kind,
                status,
                pay_to,
                amount,
                tx,
                at,
            )
            return rid

        from_journal = await record("settle", "success", "0xreport", 1, "0xaaa")
        from_v1 = await record("settle", "success", "0xreport", 1, "0xbbb")
        from_registry = await record("verify", "invalid", "0xshop", 777)
        ambiguous = await record("verify_tx", "verified", "0xtwice", 555)
        unknown = await record("settle", "failed", "0xnobody", 5)

        await migrate(conn)
        rows = {
            r["id"]: (r["resource"], r["method"], r["resource_id"])
            for r in await conn.fetch("SELECT id, resource, method, resource_id FROM payments")
        }
        assert rows == {
            from_journal: (URL, "POST", report),
            from_v1: ("https://shop.example/v1", "", None),
            from_registry: ("https://shop.example/pricey", "GET", pricey),
            ambiguous: ("", "", None),  # two listings take this payTo and amount: no guess
            unknown: ("", "", None),
        }
        # the rollups hold the records written before the migration
        hour = await conn.fetch(
            "SELECT resource, total, succeeded, failed, volume FROM analytics_hourly ORDER BY resource, failed"
        )
        assert [(r["resource"], r["total"], r["succeeded"], r["failed"], int(r["volume"])) for r in hour] == [
            ("", 1, 1, 0, 555),
            ("", 1, 0, 1, 0),
            ("https://shop.example/pricey", 1, 0, 1, 0),
            (URL, 1, 1, 0, 1),
            ("https://shop.example/v1", 1, 1, 0, 1),
        ]
    finally:
        await conn.close()


async def test_concurrent_folders_fold_each_record_once(client: Any) -> None:
    """Four folders at once over 2,000 pending records: every record lands in the rollups exactly once."""
    tenant = uuid.UUID(await new_tenant(client, "shop"))
    writer = client.app[PLATFORM].writer
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(2000):
        writer.submit(
            PaymentRecord(kind="settle", status="success" if i % 4 else "failed", network="eip155:8453", asset="0xa",
                          payer=f"0xp{i % 37}", pay_to="0xshop", amount=i, tenant_id=tenant,
                          created_at=at + timedelta(minutes=i), latency_ms=float(i % 90))
        )  # fmt: skip
    await writer.close()
    pool = client.app[PLATFORM].store.pool

    async def folder() -> None:
        while await fold_pending(pool, 150):
            pass

    await asyncio.gather(*(folder() for _ in range(4)))
    with system_scope("test: read the rollups"):
        row = await pool.fetchrow(
            "SELECT sum(total) AS t, sum(succeeded) AS ok, sum(volume) AS v FROM analytics_hourly WHERE tenant_id = $1",
            tenant,
        )
        payers = await pool.fetchval("SELECT sum(succeeded) FROM analytics_payers WHERE tenant_id = $1", tenant)
        latency = await pool.fetchval("SELECT sum(n) FROM analytics_latency_hourly WHERE tenant_id = $1", tenant)
        assert await pool.fetchval("SELECT count(*) FROM analytics_pending") == 0
    assert (row["t"], row["ok"], int(row["v"])) == (2000, 1500, sum(i for i in range(2000) if i % 4))
    assert payers == 1500
    assert latency == 2000
