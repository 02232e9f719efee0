"""Idempotency-Key on POSTs: replay, reuse with another body, 20 concurrent requests executing once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant, op


async def test_replay_and_reuse(client: Any, database_url: str) -> None:
    headers = {**op(), "Idempotency-Key": "create-acme"}
    r1 = await client.post("/v1/tenants", json={"name": "acme"}, headers=headers)
    assert r1.status == 201
    first = await r1.json()
    assert "Idempotent-Replayed" not in r1.headers

    r2 = await client.post("/v1/tenants", json={"name": "acme"}, headers=headers)
    assert r2.status == 201
    assert r2.headers["Idempotent-Replayed"] == "true"
    assert r2.headers["Content-Type"].startswith("application/json")
    assert await r2.json() == first

    r3 = await client.post("/v1/tenants", json={"name": "other"}, headers=headers)
    assert r3.status == 422
    assert (await r3.json())["code"] == "idempotency_key_reused"

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM tenants") == 1
    finally:
        await conn.close()


async def test_keys_are_per_tenant_and_failures_are_not_stored(client: Any) -> None:
    a = await new_tenant(client, "a")
    b = await new_tenant(client, "b")
    ka, kb = (await new_key(client, a))["key"], (await new_key(client, b))["key"]
    same = {"Idempotency-Key": "shared-name"}
    ra = await client.post("/verify", json=VERIFY_BODY, headers={**bearer(ka), **same})
    rb = await client.post("/verify", json=VERIFY_BODY, headers={**bearer(kb), **same})
    assert ra.status == rb.status == 200
    assert "Idempotent-Replayed" not in rb.headers  # tenant B's key space is its own
    # a replay of a verify is not counted against the quota again
    rr = await client.post("/verify", json=VERIFY_BODY, headers={**bearer(ka), **same})
    assert rr.headers["Idempotent-Replayed"] == "true"
    assert rr.headers["X402-Quota-Used"] == ra.headers["X402-Quota-Used"]

    # a request that failed validation stores nothing: the key can be used again with a good body
    h = {**bearer(ka), "Idempotency-Key": "retry-me", "Content-Type": "application/json"}
    assert (await client.post("/verify", data=b"{bad", headers=h)).status == 400
    ok = await client.post("/verify", json=VERIFY_BODY, headers=h)
    assert ok.status == 200
    assert "Idempotent-Replayed" not in ok.headers


async def test_twenty_concurrent_requests_execute_once(client: Any, database_url: str) -> None:
    tenant = await new_tenant(client, "acme")
    headers = {**op(), "Idempotency-Key": "one-key-please"}
    rs = await asyncio.gather(
        *(client.post(f"/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}, headers=headers) for _ in range(20))
    )
    statuses = sorted(r.status for r in rs)
    assert set(statuses) <= {201, 409}
    fresh = [r for r in rs if r.status == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(fresh) == 1
    for r in rs:
        if r.status == 409:
            assert (await r.json())["code"] == "idempotency_in_progress"
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 1
    finally:
        await conn.close()
    # afterwards the same request is a replay (without the one-time secret)
    again = await client.post(f"/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}, headers=headers)
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    body = await again.json()
    assert "key" not in body
    assert body["keyShownOnce"] is True
    assert body["id"] == (await fresh[0].json())["id"]


async def test_expired_keys_can_be_reused(client: Any, database_url: str) -> None:
    headers = {**op(), "Idempotency-Key": "old"}
    assert (await client.post("/v1/tenants", json={"name": "one"}, headers=headers)).status == 201
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    r = await client.post("/v1/tenants", json={"name": "two"}, headers=headers)
    assert r.status == 201
    assert "Idempotent-Replayed" not in r.headers
    assert (await r.json())["name"] == "two"


async def test_secrets_in_answers_are_not_stored(psettings: Any, aiohttp_client: Any, database_url: str) -> None:
    from aiohttp import web

    from x402.service.app import create_app

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"id": "w1", "nested": {"signingSecret": "whsec_TOPSECRET"}, "key": "x402_SECRET"})

    def install(app: web.Application) -> None:
        app.router.add_post("/v1/test-secret", handler)

    client = await aiohttp_client(create_app(psettings, installers=[install]))
    h = {**op(), "Idempotency-Key": "s1"}
    first = await (await client.post("/v1/test-secret", json={}, headers=h)).json()
    assert first["key"] == "x402_SECRET"
    again = await client.post("/v1/test-secret", json={}, headers=h)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == {"id": "w1", "nested": {}, "secretShownOnce": True}
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT response_body FROM idempotency_keys")
    finally:
        await conn.close()
    assert b"SECRET" not in bytes(stored)
