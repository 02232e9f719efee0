"""Meters, plans, customers and ``GET /v1/entitlements/{customer}`` over real Postgres: aggregations, 80/90/100%
warnings (provider events and the header), hard and soft stops, the cache and its NOTIFY invalidation."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.metering.test_ingest import _tenant_key
from tests.platform.conftest import bearer, new_key
from x402.service.app import create_app
from x402.service.appkeys import METERING
from x402.service.settings import Settings


async def _put(client: Any, path: str, body: Any, h: dict[str, str]) -> Any:
    r = await client.put(path, json=body, headers=h)
    assert r.status == 200, await r.text()
    return await r.json()


async def _send(client: Any, h: dict[str, str], *events: dict[str, Any]) -> None:
    r = await client.post("/v1/events", json={"events": list(events)}, headers=h)
    body = await r.json()
    assert body["errors"] == [], body


async def _ent(client: Any, customer: str, h: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    r = await client.get(f"/v1/entitlements/{customer}", headers=h)
    assert r.status == 200, await r.text()
    return await r.json(), r.headers.get("X402-Quota-Warning")


def _ev(i: str, meter: str, value: int = 1, customer: str = "cus_1", **props: Any) -> dict[str, Any]:
    return {"id": i, "customer": customer, "meter": meter, "value": value, "properties": props}


async def test_each_aggregation_over_the_period(client: Any) -> None:
    _, h = await _tenant_key(client, "meters", ["admin"])
    await _put(client, "/v1/meters/tokens", {}, h)  # sum by default
    await _put(client, "/v1/meters/calls", {"aggregation": "count"}, h)
    await _put(client, "/v1/meters/peak", {"aggregation": "max"}, h)
    await _put(client, "/v1/meters/users", {"aggregation": "unique", "property": "user"}, h)
    limits = {"tokens": 1000, "calls": 1000, "peak": 1000, "users": 1000}
    plan = await _put(client, "/v1/plans/pro", {"features": ["export", "beta"], "limits": limits}, h)
    assert plan["features"] == ["beta", "export"]
    assert plan["stop"] == "hard"
    await _put(client, "/v1/customers/cus_1", {"plan": "pro"}, h)
    await _send(
        client,
        h,
        _ev("a", "tokens", 30),
        _ev("b", "tokens", 12),
        _ev("c", "calls", 7),
        _ev("d", "calls", 9),
        _ev("e", "calls", 1),
        _ev("f", "peak", 5),
        _ev("g", "peak", 40),
        _ev("h", "users", user="u1"),
        _ev("i", "users", user="u2"),
        _ev("j", "users", user="u1"),
        _ev("k", "tokens", 500, customer="cus_2"),  # another customer's usage counts for them only
    )
    ent, warning = await _ent(client, "cus_1", h)
    used = {m["meter"]: m["used"] for m in ent["meters"]}
    assert used == {"tokens": 42, "calls": 3, "peak": 40, "users": 2}
    assert ent["features"] == ["beta", "export"]
    assert ent["period"]["key"] == ent["period"]["start"][:7]
    assert warning is None
    r = await client.put("/v1/meters/users", json={"aggregation": "unique"}, headers=h)
    assert r.status == 422
    r = await client.put("/v1/customers/cus_9", json={"plan": "nope"}, headers=h)
    assert (await r.json())["code"] == "unknown_plan"
    meters = await (await client.get("/v1/meters", headers=h)).json()
    assert [m["key"] for m in meters["meters"]] == ["calls", "peak", "tokens", "users"]


async def _usage_events(database_url: str, tenant: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, data FROM provider_events WHERE tenant_id = $1::uuid AND type LIKE 'usage.%' ORDER BY seq",
            tenant,
        )
    finally:
        await conn.close()
    import json

    return [(r["type"], json.loads(r["data"])["threshold"]) for r in rows]


async def test_thresholds_warn_once_and_a_hard_plan_stops(client: Any, database_url: str) -> None:
    tenant, h = await _tenant_key(client, "thresholds", ["admin"])
    await _put(client, "/v1/plans/basic", {"limits": {"tokens": 100}, "features": ["x"]}, h)
    await _put(client, "/v1/customers/cus_1", {"plan": "basic"}, h)
    await _send(client, h, _ev("1", "tokens", 79))
    assert (await _ent(client, "cus_1", h))[1] is None
    await _send(client, h, _ev("2", "tokens", 1))
    ent, warning = await _ent(client, "cus_1", h)
    assert warning == "80"
    assert ent["meters"][0]["allowed"] is True
    await _send(client, h, _ev("3", "tokens", 10), _ev("3b", "other", 10))
    assert (await _ent(client, "cus_1", h))[1] == "90"
    await _send(client, h, _ev("4", "tokens", 25))
    ent, warning = await _ent(client, "cus_1", h)
    assert warning == "100"
    assert ent["meters"][0] | {"meter": "tokens"} == {
        "meter": "tokens",
        "used": 115,
        "limit": 100,
        "remaining": 0,
        "percent": 115,
        "allowed": False,
        "overageUnits": 0,
        "overageAmount": "0",
    }
    await _send(client, h, _ev("5", "tokens", 1))  # past 100% again: no second warning this period
    assert await _usage_events(database_url, tenant) == [
        ("usage.threshold", 80),
        ("usage.threshold", 90),
        ("usage.exceeded", 100),
    ]


async def test_a_soft_plan_prices_overage(client: Any) -> None:
    _, h = await _tenant_key(client, "soft", ["admin"])
    plan = {"limits": {"tokens": 100}, "stop": "soft", "overage": {"tokens": "25"}}
    await _put(client, "/v1/plans/soft", plan, h)
    await _put(client, "/v1/customers/cus_1", {"plan": "soft"}, h)
    await _send(client, h, _ev("1", "tokens", 130))
    ent, warning = await _ent(client, "cus_1", h)
    assert warning == "100"
    meter = ent["meters"][0]
    assert (meter["allowed"], meter["overageUnits"], meter["overageAmount"]) == (True, 30, "750")


async def test_second_tenant_gets_404_and_verify_keys_cannot_change_plans(client: Any) -> None:
    a, ha = await _tenant_key(client, "ent-a", ["admin"])
    _, hb = await _tenant_key(client, "ent-b", ["verify", "admin", "wallets", "registry", "settle"])
    await _put(client, "/v1/plans/basic", {"limits": {"tokens": 100}}, ha)
    await _put(client, "/v1/customers/cus_a", {"plan": "basic"}, ha)
    r = await client.get("/v1/entitlements/cus_a", headers=hb)
    assert r.status == 404
    assert (await (await client.get("/v1/plans", headers=hb)).json()) == {"plans": []}
    hv = bearer((await new_key(client, a, ["verify"]))["key"])
    r = await client.put("/v1/plans/basic", json={"limits": {}}, headers=hv)
    assert r.status == 403
    assert (await client.get("/v1/entitlements/cus_a", headers=hv)).status == 200


async def test_cache_serves_fast_and_notify_invalidates_another_process(
    client: Any, psettings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    other = await aiohttp_client(create_app(psettings))  # a second process on the same database
    cache = other.server.app[METERING]
    await asyncio.wait_for(cache.listening.wait(), 10)
    _, h = await _tenant_key(client, "cache", ["admin"])
    await _put(client, "/v1/plans/basic", {"limits": {"tokens": 100}}, h)
    await _put(client, "/v1/customers/cus_1", {"plan": "basic"}, h)
    assert (await _ent(other, "cus_1", h))[0]["meters"][0]["used"] == 0
    # a change behind the service's back (no notification) is not seen: the answer comes from the cache
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute("UPDATE usage_plans SET features = '{sneaky}'")
    finally:
        await owner.close()
    assert (await _ent(other, "cus_1", h))[0]["features"] == []
    # usage landing through the first process reaches the second one's cache through NOTIFY
    await _send(client, h, _ev("1", "tokens", 85))
    for _ in range(200):
        ent, warning = await _ent(other, "cus_1", h)
        if ent["meters"][0]["used"] == 85:
            break
        await asyncio.sleep(0.05)
    assert ent["meters"][0]["used"] == 85
    assert warning == "80"
    assert ent["features"] == ["sneaky"]
