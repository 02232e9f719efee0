"""Migration 0017 moves the wallet webhooks' rows onto the provider-event machinery."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from wallets.events import dedupe_id, emit
from x402.service.storage.db import load_migrations, migrate


async def test_wallet_events_deliveries_and_dead_letters_are_moved(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for mg in await asyncio.to_thread(load_migrations):
            if mg.version < 17:
                await conn.execute(mg.sql)
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", mg.version, mg.name)
        tenant, wallet = uuid.uuid4(), uuid.uuid4()
        live, gone = uuid.uuid4(), uuid.uuid4()
        for endpoint, active in ((live, True), (gone, False)):
            await conn.execute(
                """INSERT INTO webhook_endpoints (id, tenant_id, url, events, key_id, nonce, ciphertext, active)
                   VALUES ($1, $2, 'https://hooks.example.com/x', '{*}', 'k', $3, 'c', $4)""",
                endpoint,
                tenant,
                b"\x00" * 12,
                active,
            )
        made = await conn.fetchval(
            """INSERT INTO wallet_events (tenant_id, wallet_id, kind, data) VALUES ($1, $2, 'payment.made',
               '{"type": "payment.made", "amount": "5"}') RETURNING id""",
            tenant,
            wallet,
        )
        low = await conn.fetchval(
            """INSERT INTO wallet_events (tenant_id, wallet_id, kind, dedupe, data)
               VALUES ($1, $2, 'wallet.low_budget', 'low_budget:w:daily:80', '{"percent": 80}') RETURNING id""",
            tenant,
            wallet,
        )
        delivered = await conn.fetchval(
            """INSERT INTO webhook_deliveries (endpoint_id, event_id, status) VALUES ($1, $2, 'delivered')
               RETURNING id""",
            live,
            made,
        )
        dead = await conn.fetchval(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, status) VALUES ($1, $2, 'dead') RETURNING id",
            live,
            low,
        )
        await conn.execute(
            """INSERT INTO webhook_dead_letters (delivery_id, endpoint_id, event_id, attempts, last_error)
               VALUES ($1, $2, $3, 8, 'HTTP 500')""",
            dead,
            live,
            low,
        )
        await conn.execute(
            """INSERT INTO webhook_dead_letters (delivery_id, endpoint_id, event_id, attempts, last_error)
               VALUES (99, $1, $2, 8, 'HTTP 500')""",
            gone,
            made,
        )

        assert 17 in await migrate(conn)

        events = await conn.fetch("SELECT id, type, tenant_id, data, dispatched, seq FROM provider_events ORDER BY seq")
        assert [(e["type"], e["tenant_id"], e["dispatched"]) for e in events] == [
            ("payment.made", tenant, True),
            ("wallet.low_budget", tenant, True),
        ]
        assert json.loads(events[0]["data"]) == {"amount": "5"}  # the envelope's type, not data.type
        assert events[1]["id"] == dedupe_id("low_budget:w:daily:80")
        rows = await conn.fetch("SELECT id, event_id, event_seq, status FROM webhook_deliveries ORDER BY id")
        assert [(r["id"], r["event_id"], r["event_seq"], r["status"]) for r in rows] == [
            (delivered, events[0]["id"], events[0]["seq"], "delivered"),
            (dead, events[1]["id"], events[1]["seq"], "dead"),
        ]
        letters = await conn.fetch("SELECT delivery_id, endpoint_id, event_id FROM webhook_dead_letters")
        assert [(r["delivery_id"], r["endpoint_id"], r["event_id"]) for r in letters] == [(dead, live, events[1]["id"])]
        assert [r["id"] for r in await conn.fetch("SELECT id FROM webhook_endpoints")] == [live]
        assert await conn.fetchval("SELECT to_regclass('wallet_events')") is None
        # a once-only wallet event fired before the migration does not fire again
        again = await emit(
            conn, tenant_id=tenant, wallet_id=wallet, kind="wallet.low_budget", data={}, dedupe="low_budget:w:daily:80"
        )
        assert again is None
    finally:
        await conn.close()
