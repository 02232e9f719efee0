"""Tenant lifecycle on real Postgres: suspension refused on every path, export of every tenant table, deletion."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chains.fake import FakeKeys
from tests.harness.paychain import PayChain
from tests.harness.services import hook_receiver
from tests.platform.conftest import ADMIN, VERIFY_BODY, bearer, new_key, new_tenant, op
from tests.platform.test_audit import _x402
from tests.wallets.conftest import FAST, MASTER_KEY, ServiceFactory, Upstream, service_factory
from wallets import datakeys, keys
from wallets.custody import CustodyError, Keyring, Sealed
from wallets.events import emit
from x402.service.appkeys import WALLETS, WEBHOOKS
from x402.service.events.dispatcher import dispatch
from x402.service.platform import audit, lifecycle
from x402.service.registry.store import PgRegistryStore
from x402.service.storage.scope import system_scope, tenant_scope

#: the prober claims due resources of every tenant in system scope (as x402/service/registry starts it)
PROBER = "test: the registry prober"


@pytest.fixture
async def wallet_service(chain: PayChain, database_url: str, aiohttp_client: Any) -> ServiceFactory:
    """These tests make their own tenants and keys: one run, no default tenant key."""
    return service_factory(chain, database_url, aiohttp_client, keys_on=False)


ALL_SCOPES = ["verify", "settle", "wallets", "registry", "admin"]


async def _service(wallet_service: Any, redis_url: str) -> TestClient[Any, Any]:
    # the analytics folder is off so a record written by the test stays pending (its table is exported too)
    client: TestClient[Any, Any] = await wallet_service(
        require_api_keys=True, admin_token=ADMIN, redis_url=redis_url, options=FAST, analytics_fold_interval=0
    )
    return client


async def _tenant_with_everything(
    client: TestClient[Any, Any], chain: PayChain, name: str, hook_url: str
) -> dict[str, Any]:
    """A tenant with an all-scope key, a funded wallet, a webhook endpoint and a registry listing."""
    tenant = await new_tenant(client, name)
    key = (await new_key(client, tenant, ALL_SCOPES))["key"]
    h = bearer(key)
    r = await client.post("/v1/wallets", json={"name": name, "chains": [chain.kind], "policy": {}}, headers=h)
    assert r.status == 201, await r.text()
    wallet = await r.json()
    await chain.fund(wallet["addresses"][chain.kind], 10**9)
    r = await client.post("/v1/webhooks", json={"url": hook_url}, headers=h)
    assert r.status == 201, await r.text()
    hook = await r.json()
    url = f"https://{name}.example.com/paid"
    body = {
        "url": url,
        "accepts": [
            {
                "scheme": "exact",
                "network": "eip155:84532",
                "amount": "1000",
                "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                "maxTimeoutSeconds": 60,
                "extra": {"name": "USDC", "version": "2"},
            }
        ],
        "description": f"{name} listing",
    }
    r = await client.post("/v1/resources", json=body, headers=h)
    assert r.status == 201, await r.text()
    resource = await r.json()
    # metering: a plan, a customer on it, usage past 80% (a warning row), a credit grant, an expiring grant (a lot)
    # and a burn taken from it, and a paywall charge held until its answer (a credit_charges row)
    calls = [
        ("PUT", "/v1/plans/basic", {"limits": {"tokens": 10}}),
        ("PUT", "/v1/customers/cus_1", {"plan": "basic"}),
        ("PUT", "/v1/meters/tokens", {}),
        ("POST", "/v1/events", {"events": [{"id": "e1", "customer": "cus_1", "meter": "tokens", "value": 9}]}),
        ("POST", "/v1/credits/cus_1/entries", {"kind": "grant", "credits": 5}),
        ("POST", "/v1/credits/cus_1/entries", {"kind": "grant", "credits": 5, "expiresAt": "2099-01-01T00:00:00Z"}),
        ("POST", "/v1/credits/cus_1/burn", {"credits": 1}),
        ("POST", "/v1/credits/cus_1/charges", {"key": "req_1", "credits": 1}),
    ]
    for method, path, doc in calls:
        r = await client.request(method, path, json=doc, headers=h)
        assert r.status in (200, 201), await r.text()
    return {"id": tenant, "key": key, "wallet": wallet, "hook": hook, "resource": resource, "url": url}


async def _discovered(client: TestClient[Any, Any]) -> set[str]:
    found = set()
    for path in ("/discovery/resources", "/discovery/search?q=listing"):
        r = await client.get(path)
        assert r.status == 200, await r.text()
        doc = await r.json()
        found |= {item["resource"] for item in doc.get("items", doc.get("resources", []))}
    return found


async def test_suspended_tenant_is_refused_everywhere_and_reactivation_restores(
    wallet_service: Any, upstream: Upstream, chain: PayChain, database_url: str, redis_url: str
) -> None:
    client = await _service(wallet_service, redis_url)
    server, deliveries = await hook_receiver()
    try:
        hook_url = str(server.make_url("/hook"))
        a = await _tenant_with_everything(client, chain, "acme", hook_url)
        b = await _tenant_with_everything(client, chain, "bravo", hook_url)
        ha, hb = bearer(a["key"]), bearer(b["key"])
        service = client.app[WALLETS]
        store = PgRegistryStore(service.pool)

        r = await client.post(f"/v1/wallets/{a['wallet']['id']}/agent-keys", json={}, headers=ha)
        assert r.status == 201, await r.text()
        agent = bearer((await r.json())["key"])
        r = await client.post(f"/v1/tenants/{a['id']}/suspend", headers=op())
        assert r.status == 200, await r.text()
        assert (await r.json())["status"] == "suspended"

        wid = a["wallet"]["id"]
        calls = [
            ("POST", "/verify", VERIFY_BODY),
            ("POST", "/settle", VERIFY_BODY),
            ("POST", "/v1/payments/verify-tx", {"network": "eip155:1", "transaction": "0x" + "1" * 64}),
            ("GET", "/v1/payments", None),
            ("GET", "/v1/wallets", None),
            ("GET", f"/v1/wallets/{wid}", None),
            ("POST", f"/v1/wallets/{wid}/pay", {"url": upstream.paid_url}),
            ("PUT", f"/v1/wallets/{wid}/policy", {}),
            ("GET", "/v1/webhooks", None),
            ("POST", "/v1/webhooks", {"url": hook_url}),
            ("POST", "/v1/resources", {"url": "https://x.example.com/"}),
            ("GET", f"/v1/resources/{a['resource']['id']}", None),
            ("GET", "/v1/risk/lists", None),
            ("GET", f"/v1/tenants/{a['id']}", None),
        ]
        for method, path, body in calls:
            r = await client.request(method, path, json=body, headers=ha)
            problem = await r.json()
            assert (r.status, problem.get("code")) == (403, "tenant_suspended"), (method, path, problem)
            assert r.content_type == "application/problem+json"
        r = await client.post(f"/v1/wallets/{wid}/pay", json={"url": upstream.paid_url}, headers=agent)
        assert (r.status, (await r.json())["code"]) == (403, "tenant_suspended")
        # another tenant is untouched
        assert (await client.post("/verify", json=VERIFY_BODY, headers=hb)).status == 200
        status_b = await client.post(
            f"/v1/wallets/{b['wallet']['id']}/pay", json={"url": upstream.paid_url}, headers=hb
        )
        assert status_b.status == 200, await status_b.text()

        # registry: hidden from discovery, not probed
        assert a["url"] not in await _discovered(client)
        assert b["url"] in await _discovered(client)
        with system_scope(PROBER):
            due = {str(res.id) for res in await store.claim_due(0.0, 1000)}
        assert a["resource"]["id"] not in due
        assert b["resource"]["id"] in due

        # webhooks: an event of the suspended tenant stays queued, nothing is sent
        with tenant_scope(a["id"]):
            async with service.pool.acquire() as conn, conn.transaction():
                await emit(conn, tenant_id=uuid.UUID(a["id"]), wallet_id=uuid.UUID(wid), kind="wallet.paused", data={})
        with system_scope("test: the webhook worker's pass, as the service runs it"):
            worker = client.app[WEBHOOKS].worker
            assert worker is not None
            for _ in range(5):
                await worker.step()
        await asyncio.sleep(0.3)  # the worker runs too (every 50 ms); it must not send either
        assert not [g for _, g in deliveries if wid.encode() in g and b'"wallet.paused"' in g]
        with system_scope("test: read the queued delivery"):
            state = await service.pool.fetchval(
                """SELECT d.status FROM webhook_deliveries d JOIN provider_events e ON e.id = d.event_id
                   WHERE e.data->>'walletId' = $1 AND e.type = 'wallet.paused'""",
                wid,
            )
        assert state == "pending"

        # reactivation restores every path
        r = await client.post(f"/v1/tenants/{a['id']}/reactivate", headers=op())
        assert (await r.json())["status"] == "active"
        assert (await client.post("/verify", json=VERIFY_BODY, headers=ha)).status == 200
        r = await client.post(f"/v1/wallets/{wid}/pay", json={"url": upstream.paid_url}, headers=ha)
        assert r.status == 200, await r.text()
        assert a["url"] in await _discovered(client)
        await store.pool.execute("UPDATE resources SET last_probe_at = NULL")
        with system_scope(PROBER):
            assert a["resource"]["id"] in {str(res.id) for res in await store.claim_due(0.0, 1000)}
        for _ in range(100):
            if any(b'"wallet.paused"' in g and wid.encode() in g for _, g in deliveries):
                break
            await asyncio.sleep(0.05)
        assert any(b'"wallet.paused"' in g and wid.encode() in g for _, g in deliveries)
    finally:
        await server.close()

    conn = await asyncpg.connect(database_url)
    try:
        actions = [
            r["action"]
            for r in await conn.fetch("SELECT action FROM audit_log WHERE object_id = $1 ORDER BY id", a["id"])
        ]
        assert actions == ["tenant.create", "tenant.suspend", "tenant.reactivate"]
        assert (await audit.verify(conn)).ok
    finally:
        await conn.close()


async def test_only_the_operator_suspends_and_unknown_tenants_are_404(wallet_service: Any, redis_url: str) -> None:
    client = await _service(wallet_service, redis_url)
    a = await new_tenant(client, "acme")
    key = (await new_key(client, a))["key"]
    r = await client.post(f"/v1/tenants/{a}/suspend", headers=bearer(key))
    assert (r.status, (await r.json())["code"]) == (403, "operator_only")
    r = await client.post(f"/v1/tenants/{uuid.uuid4()}/suspend", headers=op())
    assert r.status == 404
    # suspending twice is one change (audited once); the key then learns why it is refused, a wrong key does not
    for _ in range(2):
        assert (await client.post(f"/v1/tenants/{a}/suspend", headers=op())).status == 200
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key))
    assert (r.status, (await r.json())["code"]) == (403, "tenant_suspended")
    wrong = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(wrong))
    assert (r.status, (await r.json())["code"]) == (401, "invalid_api_key")


async def _populate_leftovers(conn: asyncpg.Connection, t: dict[str, Any]) -> None:
    """Rows in the tenant tables no API call above filled (payments, events, ledger rows, dead letters, ...)."""
    tid, wid, hid = uuid.UUID(t["id"]), uuid.UUID(t["wallet"]["id"]), uuid.UUID(t["hook"]["id"])
    await conn.execute(
        "INSERT INTO payments (id, tenant_id, kind, status, network, created_at) VALUES ($1, $2, 'verify', 'valid',"
        " 'eip155:1', now())",
        uuid.uuid4(),
        tid,
    )
    # records that fill every analytics rollup once folded (the app's folder is off here; see _pending_record); the
    # payer also paid a day (and a week) before: a payer of two consecutive days (analytics_payer_pairs)
    for status, ago in (("success", "0"), ("failed", "0"), ("success", "1 day"), ("success", "7 days")):
        await conn.execute(
            """INSERT INTO payments (id, tenant_id, kind, status, network, payer, amount, latency_ms, risk, risk_level,
                                     risk_flags, created_at)
               VALUES ($1, $2, 'settle', $3, 'eip155:1', '0xpayer', 5, 12, 'accept', 'low', 'new_payer',
                       now() - $4::text::interval)""",
            uuid.uuid4(),
            tid,
            status,
            ago,
        )

    await conn.execute(
        "INSERT INTO events (tenant_id, kind, period, data) VALUES ($1, 'quota.80', '2026-12', '{}')", tid
    )
    await conn.execute(
        """INSERT INTO wallet_payments (id, wallet_id, status, amount, network, asset, pay_to, url, expires_at)
           VALUES ($1, $2, 'released', 5, 'eip155:1', '0xa', '0xb', 'https://x/', now())""",
        uuid.uuid4(),
        wid,
    )
    await conn.execute(
        """INSERT INTO wallet_approvals (id, wallet_id, status, amount, network, asset, pay_to, url, expires_at)
           VALUES ($1, $2, 'pending', 5, 'eip155:1', '0xa', '0xb', 'https://x/', now())""",
        uuid.uuid4(),
        wid,
    )
    async with conn.transaction():
        event = await emit(conn, tenant_id=tid, wallet_id=wid, kind="payment.made", data={"n": 1})
    delivery = None
    for _ in range(100):  # fanned out to the tenant's endpoint, by this call or by the app's own webhook worker
        await dispatch(conn)  # (whose pass may hold the event until it commits: dispatch skips locked rows)
        delivery = await conn.fetchval("SELECT id FROM webhook_deliveries WHERE event_id = $1", event)
        if delivery is not None:
            break
        await asyncio.sleep(0.05)
    assert delivery is not None
    await conn.execute(
        """INSERT INTO webhook_dead_letters (delivery_id, endpoint_id, event_id, attempts, last_error)
           VALUES ($1, $2, $3, 3, 'HTTP 500')""",
        delivery,
        hid,
        event,
    )
    await conn.execute("INSERT INTO risk_rule_configs (tenant_id, document) VALUES ($1, '{}')", t["id"])
    await conn.execute(
        "INSERT INTO verified_transactions (tenant_id, network, tx_id, pay_to, asset, amount)"
        " VALUES ($1, 'eip155:1', $2, '0xb', '0xa', 5)",
        tid,
        "0x" + secrets.token_hex(32),
    )
    await conn.execute(
        "INSERT INTO payto_claims (tenant_id, address, proof_kind, signature) VALUES ($1, $2, 'eip191', '0x00')",
        tid,
        "0x" + secrets.token_hex(20),
    )
    await conn.execute(
        "INSERT INTO payment_identifiers (tenant_id, id, fingerprint) VALUES ($1, $2, '\\x00')",
        t["id"],
        "pid_" + secrets.token_hex(8),
    )
    await conn.execute(
        "INSERT INTO siwx_entitlements (tenant_id, address, purchase, expires_at) VALUES ($1, $2, 'p', now())",
        t["id"],
        "0x" + secrets.token_hex(20),
    )
    await conn.execute(
        "INSERT INTO resource_ratings (resource_id, tenant_id, rating) VALUES ($1, $2, 4)",
        uuid.UUID(t["resource"]["id"]),
        tid,
    )
    await conn.execute(
        """INSERT INTO dashboard_sessions (id, tenant_id, key_id, hash, csrf_secret, expires_at)
           SELECT $1, tenant_id, id, $2, $3, now() + interval '1 hour' FROM api_keys WHERE tenant_id = $4 LIMIT 1""",
        uuid.uuid4(),
        secrets.token_bytes(32),
        "csrf-" + secrets.token_hex(8),
        tid,
    )

    await conn.execute(
        """INSERT INTO calls (id, tenant_id, wallet_id, resource_id, owner_tenant_id, url, method, amount, fee_bps,
                              fee, status, latency_ms)
           VALUES ($1, $2, $3, $4, $2, 'https://x/', 'GET', 5, 0, 0, 'paid', 1)""",
        uuid.uuid4(),
        tid,
        wid,
        uuid.UUID(t["resource"]["id"]),
    )


async def _pending_record(conn: asyncpg.Connection, tenant: str) -> None:
    """A payment record written after the last analytics fold: it stays in analytics_pending."""
    await conn.execute(
        "INSERT INTO payments (id, tenant_id, kind, status, network, created_at) VALUES ($1, $2, 'verify', 'invalid',"
        " 'eip155:1', now())",
        uuid.uuid4(),
        uuid.UUID(tenant),
    )


async def test_export_holds_every_tenant_table_and_nothing_of_another_tenant(
    wallet_service: Any, chain: PayChain, database_url: str, redis_url: str
) -> None:
    client = await _service(wallet_service, redis_url)
    hook = "http://127.0.0.1:9/hook"
    a = await _tenant_with_everything(client, chain, "acme", hook)
    b = await _tenant_with_everything(client, chain, "bravo", hook)
    for t in (a, b):
        h = bearer(t["key"])
        r = await client.post("/v1/risk/lists/deny", json={"addresses": ["0x" + "ab" * 20]}, headers=h)
        assert r.status == 200, await r.text()
        r = await client.post(
            f"/v1/wallets/{t['wallet']['id']}/agent-keys", json={}, headers={**h, "Idempotency-Key": "ak-1"}
        )
        assert r.status == 201, await r.text()
        t["agent_key"] = (await r.json())["key"]
    conn = await asyncpg.connect(database_url)
    try:
        for t in (a, b):
            await _populate_leftovers(conn, t)
        await conn.fetchval("SELECT x402_analytics_fold(1000)")
        for t in (a, b):
            await _pending_record(conn, t["id"])
        # a feature added later: its tables are exported without anyone listing them
        await conn.execute("CREATE TABLE later_things (id uuid PRIMARY KEY, tenant_id uuid, note text)")
        await conn.execute("CREATE TABLE later_parts (id uuid PRIMARY KEY, thing uuid REFERENCES later_things (id))")
        await conn.execute("SELECT x402_tenant_walls()")  # what `x402 migrate` runs after a migration adds tables
        for t in (a, b):
            thing = uuid.uuid4()
            t["thing"] = str(thing)
            await conn.execute("INSERT INTO later_things VALUES ($1, $2, $3)", thing, uuid.UUID(t["id"]), t["id"])
            await conn.execute("INSERT INTO later_parts VALUES ($1, $2)", uuid.uuid4(), thing)
        tables = await lifecycle.tenant_tables(conn)
        every = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                " AND table_type = 'BASE TABLE'"
            )
        }
        b_secrets = {
            bytes(r["ciphertext"]).hex()
            for r in await conn.fetch(
                "SELECT ciphertext FROM wallet_keys UNION ALL SELECT ciphertext FROM webhook_endpoints"
            )
        }
        b_secrets |= {bytes(r["hash"]).hex() for r in await conn.fetch("SELECT hash FROM api_keys")}
    finally:
        await conn.close()
    owned = {t.name for t in tables}
    # every table is either a tenant table (found through the catalogue) or declared global: a new table that is
    # neither makes this fail
    assert every - owned - lifecycle.GLOBAL_TABLES == set(), every - owned - lifecycle.GLOBAL_TABLES
    assert {"wallet_keys", "wallet_payments", "webhook_deliveries", "webhook_dead_letters", "tenant_data_keys"} <= owned
    assert {"later_things", "later_parts"} <= owned

    r = await client.get(f"/v1/tenants/{a['id']}/export", headers=op())
    assert r.status == 200, await r.text()
    assert r.content_type == "application/x-ndjson"
    text = await r.text()
    lines = [json.loads(line) for line in text.splitlines()]
    by_table: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        assert set(line) == {"table", "row"}
        by_table.setdefault(line["table"], []).append(line["row"])
    missing = owned - set(by_table)
    assert missing == set(), f"tenant tables with no exported row: {missing}"
    assert "audit_log" in by_table
    # nothing of tenant B, no secret of anyone
    assert [row["thing"] for row in by_table["later_parts"]] == [a["thing"]]
    for needle in (b["id"], b["wallet"]["id"], b["hook"]["id"], b["resource"]["id"], b["url"], b["key"], b["thing"]):
        assert needle not in text
    for secret in (a["key"], a["agent_key"], b["key"], MASTER_KEY, *b_secrets):
        assert secret not in text
    assert all(row["hash"] == lifecycle.REDACTED for row in by_table["api_keys"])
    assert all(row["ciphertext"] == lifecycle.REDACTED for row in by_table["wallet_keys"])
    assert all(row["hash"] == row["csrf_secret"] == lifecycle.REDACTED for row in by_table["dashboard_sessions"])
    assert by_table["tenants"][0]["id"] == a["id"]
    # a tenant's own admin key may export its own data, not another tenant's
    r = await client.get(f"/v1/tenants/{b['id']}/export", headers=bearer(a["key"]))
    assert r.status == 404

    # the CLI writes the same lines
    cli = await asyncio.to_thread(_x402, database_url, "tenants", "export", a["id"])
    assert cli.returncode == 0, cli.stderr
    cli_tables = {json.loads(line)["table"] for line in cli.stdout.splitlines()}
    assert owned <= cli_tables


@pytest.mark.allow_blocking
async def test_delete_crypto_shreds_wallet_keys_and_keeps_the_audit_chain(
    wallet_service: Any, upstream: Upstream, chain: PayChain, database_url: str, redis_url: str
) -> None:
    client = await _service(wallet_service, redis_url)
    hook = "http://127.0.0.1:9/hook"
    a = await _tenant_with_everything(client, chain, "acme", hook)
    b = await _tenant_with_everything(client, chain, "bravo", hook)
    master = Keyring.parse(MASTER_KEY)
    wid = uuid.UUID(a["wallet"]["id"])
    conn = await asyncpg.connect(database_url)
    try:
        # what a backup taken before the deletion holds
        kept = await conn.fetchrow("SELECT * FROM wallet_keys WHERE wallet_id = $1", wid)
        assert kept is not None
        assert kept["dek_id"] is not None
        dek_row = await conn.fetchrow("SELECT * FROM tenant_data_keys WHERE tenant_id = $1", uuid.UUID(a["id"]))
        assert dek_row is not None
        sealed = Sealed(kept["key_id"], bytes(kept["nonce"]), bytes(kept["ciphertext"]))
        # before: the key opens through the tenant's DEK (and not with the master key directly)
        opened = await datakeys.wallet_key(conn, master, wid, chain.kind)
        assert opened is not None
        secret = opened[0].unseal(sealed, aad=keys.aad(wid, chain.kind))
        assert FakeKeys().signer(secret).address == a["wallet"]["addresses"][chain.kind]
    finally:
        await conn.close()

    r = await client.delete(f"/v1/tenants/{a['id']}", headers=op())
    assert (r.status, (await r.json())["code"]) == (400, "confirmation_required")
    r = await client.delete(f"/v1/tenants/{a['id']}?confirm={a['id']}", headers=op())
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "deleted"

    conn = await asyncpg.connect(database_url)
    try:
        # the DEK is gone, so the old ciphertext opens with nothing: not the master key, not any configured key
        assert await conn.fetchval("SELECT count(*) FROM tenant_data_keys WHERE id = $1", dek_row["id"]) == 0
        with pytest.raises(CustodyError):
            master.unseal(sealed, aad=keys.aad(wid, chain.kind))
        with pytest.raises(InvalidTag):
            AESGCM(master.current).decrypt(sealed.nonce, sealed.ciphertext, keys.aad(wid, chain.kind))
        assert await datakeys.wallet_key(conn, master, wid, chain.kind) is None
        # every tenant table is empty of A's rows; the tenant row is an anonymised tombstone
        for table in await lifecycle.tenant_tables(conn):
            n = await conn.fetchval(f"SELECT count(*) FROM {table.name} WHERE {table.condition}", a["id"])
            assert n == (1 if table.name == "tenants" else 0), table.name
            n_b = await conn.fetchval(f"SELECT count(*) FROM {table.name} WHERE {table.condition}", b["id"])
            if table.name in ("tenants", "wallets", "wallet_keys", "api_keys", "tenant_data_keys", "resources"):
                assert n_b >= 1, table.name
        assert (await conn.fetchval("SELECT name FROM tenants WHERE id = $1", uuid.UUID(a["id"]))) == ""
        assert (await audit.verify(conn)).ok
        last = await conn.fetchrow("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
        assert last is not None
        assert (last["action"], last["object_id"]) == ("tenant.delete", a["id"])
        assert json.loads(last["after"])["dataKeyDestroyed"] is True
    finally:
        await conn.close()
    # A's key is gone; B still pays from its wallet
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(a["key"]))
    assert r.status == 401
    r = await client.post(
        f"/v1/wallets/{b['wallet']['id']}/pay", json={"url": upstream.paid_url}, headers=bearer(b["key"])
    )
    assert r.status == 200, await r.text()
    # a deleted tenant cannot be reactivated or deleted again
    assert (await client.post(f"/v1/tenants/{a['id']}/reactivate", headers=op())).status == 404
    assert (await client.delete(f"/v1/tenants/{a['id']}?confirm={a['id']}", headers=op())).status == 404
    assert (await client.post(f"/v1/tenants/{a['id']}/keys", json={}, headers=op())).status == 404
    assert (await client.get(f"/v1/tenants/{a['id']}/export", headers=op())).status == 404


@pytest.mark.slow
async def test_existing_master_sealed_wallet_keys_move_under_tenant_data_keys(
    wallet_service: Any, upstream: Upstream, chain: PayChain, database_url: str, redis_url: str
) -> None:
    client = await _service(wallet_service, redis_url)
    tenant = await new_tenant(client, "legacy")
    key = (await new_key(client, tenant, ALL_SCOPES))["key"]
    master = Keyring.parse(MASTER_KEY)
    # a wallet as an older release stored it: the key sealed straight under the master key
    wid = uuid.uuid4()
    new = keys.generate(FakeKeys())
    old = keys.seal(master, wid, new)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO wallets (id, tenant_id, name, addresses) VALUES ($1, $2, 'old', $3::jsonb)",
            wid,
            uuid.UUID(tenant),
            json.dumps({new.chain: new.address}),
        )
        await conn.execute(
            "INSERT INTO wallet_keys (wallet_id, chain, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)",
            wid,
            new.chain,
            old.key_id,
            old.nonce,
            old.ciphertext,
        )
    finally:
        await conn.close()
    # start-up moves it (what a restart after the upgrade does)
    with system_scope("test: the start-up job runs in system scope (x402/service/wallets_api/routes.py)"):
        await client.app[WALLETS].prepare()
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM wallet_keys WHERE wallet_id = $1", wid)
        assert row is not None
        assert row["dek_id"] is not None
        assert bytes(row["ciphertext"]) != old.ciphertext
    finally:
        await conn.close()
    await chain.fund(new.address, 10**9)
    r = await client.post(f"/v1/wallets/{wid}/pay", json={"url": upstream.paid_url}, headers=bearer(key))
    assert r.status == 200, await r.text()
    # suspend + reactivate through the CLI, as an operator without the admin token would
    sus = await asyncio.to_thread(_x402, database_url, "tenants", "suspend", tenant)
    assert sus.returncode == 0, sus.stderr
    assert json.loads(sus.stdout)["status"] == "suspended"
    # the API process learns of it within the key cache TTL; here the cache is dropped
    from x402.service.appkeys import PLATFORM

    client.app[PLATFORM].auth.forget()
    r = await client.post(f"/v1/wallets/{wid}/pay", json={"url": upstream.paid_url}, headers=bearer(key))
    assert (r.status, (await r.json())["code"]) == (403, "tenant_suspended")
    re = await asyncio.to_thread(_x402, database_url, "tenants", "reactivate", tenant)
    assert json.loads(re.stdout)["status"] == "active"
    client.app[PLATFORM].auth.forget()
    r = await client.post(f"/v1/wallets/{wid}/pay", json={"url": upstream.paid_url}, headers=bearer(key))
    assert r.status == 200, await r.text()
    # and deletion through the CLI: the wallet key no longer opens
    refused = await asyncio.to_thread(_x402, database_url, "tenants", "delete", tenant, "--confirm", "nope")
    assert refused.returncode == 1
    assert "confirmation_required" in refused.stderr
    gone = await asyncio.to_thread(_x402, database_url, "tenants", "delete", tenant, "--confirm", tenant)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["status"] == "deleted"
    client.app[PLATFORM].auth.forget()
    r = await client.post(f"/v1/wallets/{wid}/pay", json={"url": upstream.paid_url}, headers=bearer(key))
    assert r.status == 401
    conn = await asyncpg.connect(database_url)
    try:
        assert await datakeys.wallet_key(conn, master, wid, chain.kind) is None
        assert (await audit.verify(conn)).ok
    finally:
        await conn.close()
