"""Row-level security, the second wall: queries without a tenant filter, the role, the start-up check."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from tests.harness.services import with_database
from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant
from x402.errors import ConfigError
from x402.service.app import create_app
from x402.service.appkeys import DB, PLATFORM
from x402.service.settings import Settings
from x402.service.storage.db import UNWALLED, migrate_url
from x402.service.storage.scope import system_scope, tenant_scope
from x402.service.storage.walls import APP_ROLE, create_walled_pool

MASTER = secrets.token_hex(32)


async def _tenant_tables(conn: Any) -> list[str]:
    rows = await conn.fetch(
        """SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t USING
           (table_schema, table_name) WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id'
           AND t.table_type = 'BASE TABLE' ORDER BY 1"""
    )
    return [r[0] for r in rows]


async def _populate(client: Any, name: str) -> tuple[str, str]:
    """A tenant with a key, a payment record, a wallet, a webhook, a risk rule set and list entry."""
    tenant = await new_tenant(client, name)
    key = (await new_key(client, tenant, ["verify", "admin", "wallets", "registry"]))["key"]
    h = bearer(key)
    assert (await client.post("/verify", json=VERIFY_BODY, headers=h)).status == 200
    r = await client.post("/v1/wallets", json={"name": name, "chains": ["evm"]}, headers=h)
    assert r.status == 201, await r.text()
    r = await client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/x", "events": ["payment.made"]}, headers=h
    )
    assert r.status == 201, await r.text()
    rules = {"custom": [{"name": f"cap-{name}", "when": "amount > 10", "action": "flag"}]}
    r = await client.put("/v1/risk/rules", json=rules, headers=h)
    assert r.status == 200, await r.text()
    r = await client.post("/v1/risk/lists/deny", json={"addresses": ["0x" + secrets.token_hex(20)]}, headers=h)
    assert r.status in (200, 201), await r.text()
    return tenant, key


@pytest.fixture
async def two_tenants(psettings: Settings, aiohttp_client: Any) -> Any:
    app = create_app(psettings.with_(master_key=MASTER))
    client = await aiohttp_client(app)
    a, _ = await _populate(client, "tenant-a")
    b, _ = await _populate(client, "tenant-b")
    await app[PLATFORM].writer.close()  # every payment record is committed
    return app, a, b


async def test_the_service_runs_as_a_role_held_to_rls(two_tenants: Any) -> None:
    app, _, _ = two_tenants
    row = await app[DB].fetchrow(
        "SELECT current_user AS who, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    assert row["who"] == APP_ROLE  # the tests connect as the superuser postgres: the pool switched role
    assert not row["rolsuper"]
    assert not row["rolbypassrls"]


async def test_a_query_without_tenant_filter_sees_only_its_tenant(two_tenants: Any, database_url: str) -> None:
    app, a, b = two_tenants
    pool = app[DB]
    owner = await asyncpg.connect(database_url)  # the superuser: the ground truth
    try:
        tables = await _tenant_tables(owner)
        assert {"payments", "api_keys", "wallets", "webhook_endpoints", "risk_rule_configs"} <= set(tables)
        populated = []
        for table in tables:
            n_a = await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id::text = $1", a)
            if n_a:
                populated.append(table)
            with tenant_scope(b):
                # the query "forgets" its tenant filter: the wall still hides every row of A
                seen = await pool.fetch(f"SELECT tenant_id::text AS t FROM {table}")
                assert {r["t"] for r in seen} <= {b, None}, table
                assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id::text = $1", a) == 0
            # no scope at all (a forgotten scope): rows of no tenant only
            assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id IS NOT NULL") == 0, table
        assert {"payments", "api_keys", "wallets", "webhook_endpoints", "risk_rule_configs"} <= set(populated)
        with system_scope("test: the system scope spans tenants"):
            assert await pool.fetchval("SELECT count(DISTINCT tenant_id) FROM payments") == 2
    finally:
        await owner.close()


async def test_writes_cannot_cross_the_wall(two_tenants: Any, database_url: str) -> None:
    app, a, b = two_tenants
    pool = app[DB]
    with tenant_scope(b):
        assert await pool.execute("UPDATE payments SET status = 'forged'") == "UPDATE 1"  # B's own row only
        assert await pool.execute("DELETE FROM wallets WHERE tenant_id::text = $1", a) == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await pool.execute(
                "INSERT INTO payments (id, tenant_id, kind, status, network, created_at)"
                " VALUES ($1, $2::uuid, 'verify', 'valid', 'eip155:1', now())",
                uuid.uuid4(),
                a,
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await pool.execute("UPDATE wallets SET tenant_id = $1::uuid", a)  # moving B's rows into A
        # shared rows (no tenant) are readable but not writable from a tenant scope
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(
                "INSERT INTO risk_address_lists (tenant_id, list, address) VALUES (NULL, 'allow', '0xabc')"
            )
    owner = await asyncpg.connect(database_url)
    try:
        assert await owner.fetchval("SELECT status FROM payments WHERE tenant_id::text = $1", a) == "invalid"
        assert await owner.fetchval("SELECT count(*) FROM wallets WHERE tenant_id::text = $1", a) == 1
    finally:
        await owner.close()


async def test_start_up_refuses_a_tenant_table_without_rls(settings: Settings, database_url: str) -> None:
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute("ALTER TABLE wallets DISABLE ROW LEVEL SECURITY")
        with pytest.raises(ConfigError, match=r"row-level security is off on tenant table.*wallets"):
            await create_walled_pool(database_url)
        # a table added later (by any migration) with a tenant_id column is caught as well
        await owner.execute("ALTER TABLE wallets ENABLE ROW LEVEL SECURITY")
        await owner.execute("CREATE TABLE later_things (id int PRIMARY KEY, tenant_id uuid)")
        with pytest.raises(ConfigError, match="later_things"):
            await create_walled_pool(database_url)
        runner = web.AppRunner(create_app(settings.with_(migrate_on_start=False)))
        with pytest.raises(ConfigError, match="later_things"):
            await runner.setup()
        await runner.cleanup()
        # x402 migrate walls it (it re-runs x402_tenant_walls() whenever a tenant table lacks the wall)
        await migrate_url(database_url)
        assert await owner.fetch(UNWALLED) == []
        pool = await create_walled_pool(database_url)
        await pool.close()
    finally:
        await owner.close()


async def test_a_plain_role_url_runs_as_itself_and_is_held_by_force_rls(
    pg_server_url: str, database_url: str, psettings: Settings, aiohttp_client: Any
) -> None:
    """DATABASE_URL naming a plain role (even the tables' owner): no role switch, FORCE RLS still binds it."""
    role = f"x402_plain_{secrets.token_hex(4)}"
    name = database_url.rsplit("/", 1)[1].split("?")[0]
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')
        owner = await asyncpg.connect(database_url)
        try:
            # the plain role owns every table, as when it ran the migrations itself
            for table in await owner.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"):
                await owner.execute(f'ALTER TABLE "{table[0]}" OWNER TO "{role}"')
            await owner.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        finally:
            await owner.close()
        url = with_database(pg_server_url.replace("postgres@", f"{role}@", 1), name)
        app = create_app(psettings.with_(database_url=url, migrate_on_start=False))
        client = await aiohttp_client(app)
        a = await new_tenant(client, "a")
        b = await new_tenant(client, "b")
        key_a = (await new_key(client, a, ["verify"]))["key"]
        assert (await client.post("/verify", json=VERIFY_BODY, headers=bearer(key_a))).status == 200
        await app[PLATFORM].writer.close()
        assert await app[DB].fetchval("SELECT current_user") == role
        with tenant_scope(b):
            assert await app[DB].fetchval("SELECT count(*) FROM payments") == 0
            assert await app[DB].fetchval("SELECT count(*) FROM api_keys") == 0
        with tenant_scope(a):
            assert await app[DB].fetchval("SELECT count(*) FROM payments") == 1
        await client.close()
    finally:
        admin2 = await asyncpg.connect(database_url)
        try:
            for table in await admin2.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"):
                await admin2.execute(f'ALTER TABLE "{table[0]}" OWNER TO postgres')
            await admin2.execute(f'DROP OWNED BY "{role}"')
        finally:
            await admin2.close()
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_one_pooled_connection_carries_each_checkouts_scope(two_tenants: Any, database_url: str) -> None:
    """Scopes alternate over one physical connection; the write-back on release never leaks into the next one."""
    _, a, b = two_tenants
    pool = await create_walled_pool(database_url, min_size=1, max_size=1)
    q = "SELECT array_agg(DISTINCT tenant_id::text) FROM api_keys"
    try:
        for _ in range(2):
            with tenant_scope(a):
                assert await pool.fetchval(q) == [a]
                async with pool.acquire() as conn:
                    pid = await conn.fetchval("SELECT pg_backend_pid()")
                    assert await conn.fetchval(q) == [a]  # repeated checkout of the same scope: no new write
            with tenant_scope(b):
                assert await pool.fetchval(q) == [b]
            assert await pool.fetchval(q) is None  # anonymous: rows of no tenant only (api keys have a tenant)
            with system_scope("test: every tenant"):
                assert sorted(await pool.fetchval(q)) == sorted([a, b])
            assert await pool.fetchval("SELECT pg_backend_pid()") == pid  # all of it on the one connection
        # a connection whose scope is unknown (a write cancelled midway) goes back to the pool anonymous
        async with pool.acquire() as conn:
            raw = conn._con  # type: ignore[attr-defined]  # the proxy's raw connection: private, so not in the stubs
            raw._x402_wall = None
        with tenant_scope(b):
            assert await pool.fetchval(q) == [b]
    finally:
        await pool.close()
