"""Tenant isolation: tenant B's keys see none of tenant A's objects (404 everywhere, never 403 or 200)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant
from x402.platform.context import PLATFORM


async def test_tenant_b_gets_404_on_every_object_of_tenant_a(client: Any) -> None:
    a = await new_tenant(client, "tenant-a")
    b = await new_tenant(client, "tenant-b")
    a_admin = await new_key(client, a)
    a_other = await new_key(client, a, ["verify"])
    b_admin = (await new_key(client, b))["key"]

    # tenant A has a payment record
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(a_admin["key"]))
    assert r.status == 200
    await asyncio.sleep(0.2)  # the batched writer flushes every ~50 ms
    listed = await (await client.get("/v1/payments", headers=bearer(a_admin["key"]))).json()
    assert len(listed["data"]) == 1
    a_payment = listed["data"][0]["id"]

    as_b = bearer(b_admin)
    probes = [
        ("GET", f"/v1/tenants/{a}", None),
        ("PATCH", f"/v1/tenants/{a}", {"tier": "pro"}),
        ("GET", f"/v1/tenants/{a}/keys", None),
        ("POST", f"/v1/tenants/{a}/keys", {"scopes": ["verify"]}),
        ("POST", f"/v1/keys/{a_other['id']}/rotate", {}),
        ("DELETE", f"/v1/keys/{a_other['id']}", None),
        ("GET", f"/v1/payments/{a_payment}", None),
    ]
    for method, path, body in probes:
        r = await client.request(method, path, json=body, headers=as_b)
        problem = await r.json()
        assert r.status == 404, (method, path, problem)
        assert problem["code"] == "not_found"

    # listings only ever show the caller's own tenant
    tenants = await (await client.get("/v1/tenants", headers=as_b)).json()
    assert [t["id"] for t in tenants["data"]] == [b]
    payments = await (await client.get("/v1/payments", headers=as_b)).json()
    assert payments["data"] == []
    usage = await (await client.get("/v1/usage", headers=as_b)).json()
    assert usage["total"] == 0

    # and A's objects are untouched
    keys_a = await (await client.get(f"/v1/tenants/{a}/keys", headers=bearer(a_admin["key"]))).json()
    assert len(keys_a["data"]) == 2
    assert all("revokedAt" not in k for k in keys_a["data"])
    assert (await client.post("/verify", json=VERIFY_BODY, headers=bearer(a_other["key"]))).status == 200


async def test_tenant_admin_cannot_act_as_operator(client: Any) -> None:
    a = await new_tenant(client, "tenant-a")
    key = (await new_key(client, a))["key"]
    r = await client.post("/v1/tenants", json={"name": "mine"}, headers=bearer(key))
    assert r.status == 403
    r = await client.patch(f"/v1/tenants/{a}", json={"tier": "enterprise"}, headers=bearer(key))
    assert r.status == 403
    no_admin = (await new_key(client, a, ["verify"]))["key"]
    r = await client.get(f"/v1/tenants/{a}/keys", headers=bearer(no_admin))
    assert r.status == 403
    assert (await r.json())["code"] == "insufficient_scope"


async def test_anonymous_records_when_keys_are_off(settings: Any, aiohttp_client: Any) -> None:
    from x402.app import create_app

    app = create_app(settings)
    client = await aiohttp_client(app)
    r = await client.post("/verify", json=VERIFY_BODY)
    assert r.status == 200
    await app[PLATFORM].writer.close()
    row = await app[PLATFORM].store.pool.fetchrow("SELECT * FROM payments")
    assert row["tenant_id"] is None
    assert row["kind"] == "verify"
    assert row["status"] == "invalid"
    assert row["reason"] == "invalid_network"
    assert row["amount"] == 10000
