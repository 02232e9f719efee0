"""Monthly verification quotas: warnings at 80/90/100 %, free tier stopped at 100 %, paid tiers count overage."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant
from x402.service.app import create_app
from x402.service.settings import Settings

TIERS = {"free": {"monthlyQuota": 10, "ratePerSecond": 1000}, "starter": {"monthlyQuota": 10, "ratePerSecond": 1000}}


async def test_free_tier_warnings_then_stop(database_url: str, psettings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(psettings.with_(tiers_override=TIERS)))
    tenant = await new_tenant(client, "free-co")
    key = (await new_key(client, tenant, ["verify"]))["key"]
    warnings = []
    for n in range(1, 11):
        r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key))
        assert r.status == 200
        assert r.headers["X402-Quota-Used"] == str(n)
        assert r.headers["X402-Quota-Limit"] == "10"
        warnings.append(r.headers.get("X402-Quota-Warning"))
    assert warnings == [None] * 7 + ["80", "90", "100"]

    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key))
    problem = await r.json()
    assert r.status == 429
    assert problem["code"] == "quota_exceeded"
    assert r.headers["X402-Quota-Warning"] == "100"
    assert int(r.headers["Retry-After"]) > 0

    conn = await asyncpg.connect(database_url)
    try:
        events = await conn.fetch("SELECT kind FROM events WHERE tenant_id = $1::uuid ORDER BY id", tenant)
        recorded = await conn.fetchval("SELECT count(*) FROM payments")
    finally:
        await conn.close()
    assert [e["kind"] for e in events] == ["quota_80", "quota_90", "quota_100", "quota_exceeded"]
    usage = await (await client.get("/v1/usage", headers=bearer(key))).json()
    assert usage["quota"]["used"] >= 10
    assert usage["quota"]["limit"] == 10
    assert recorded <= 10  # the refused request did no verification


async def test_paid_tier_counts_overage(psettings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(psettings.with_(tiers_override=TIERS)))
    tenant = await new_tenant(client, "paying-co", tier="starter")
    key = (await new_key(client, tenant, ["verify"]))["key"]
    for _ in range(12):
        r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key))
        assert r.status == 200
    assert r.headers["X402-Quota-Used"] == "12"
    assert r.headers["X402-Quota-Overage"] == "2"
    assert r.headers["X402-Quota-Warning"] == "100"
    usage = await (await client.get("/v1/usage", headers=bearer(key))).json()
    assert usage["quota"]["overage"] == 2
