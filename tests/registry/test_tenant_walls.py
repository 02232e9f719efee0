"""Registry walls with API keys on: another tenant's resource is 404 for writes, its owner is never shown to others,
public discovery never names a tenant, and ratings are one per tenant, never your own, and capped per hour."""

from __future__ import annotations

from typing import Any

import pytest

from tests.platform.conftest import ADMIN, bearer, new_key, new_tenant, op
from tests.registry.conftest import resource
from x402.service.app import create_app
from x402.service.registry.routes import RATINGS_PER_HOUR
from x402.service.settings import Settings


@pytest.fixture
async def client(settings: Settings, redis_url: str, aiohttp_client: Any) -> Any:
    """The registry on the full app, API keys required."""
    keyed = settings.with_(require_api_keys=True, admin_token=ADMIN, redis_url=redis_url)
    return await aiohttp_client(create_app(keyed))


async def _tenant(client: Any, name: str) -> tuple[str, dict[str, str]]:
    tenant = await new_tenant(client, name, tier="enterprise")
    key = (await new_key(client, tenant, ["registry", "verify"]))["key"]
    return tenant, bearer(key)


async def test_another_tenants_resource_is_not_found_and_its_owner_is_hidden(client: Any) -> None:
    a, as_a = await _tenant(client, "tenant-a")
    b, as_b = await _tenant(client, "tenant-b")
    r = await client.post("/v1/resources", json=resource("https://a.example.com/weather"), headers=as_a)
    created = await r.json()
    assert r.status == 201, created
    assert created["tenantId"] == a
    rid = created["id"]

    r = await client.get(f"/v1/resources/{rid}")
    assert (r.status, (await r.json())["code"]) == (401, "api_key_required")
    r = await client.get(f"/v1/resources/{rid}", headers=as_b)
    seen = await r.json()
    assert (r.status, seen["code"]) == (404, "resource_not_found"), seen
    assert a not in await r.text()
    assert (await (await client.get(f"/v1/resources/{rid}", headers=as_a)).json())["tenantId"] == a
    assert (await (await client.get(f"/v1/resources/{rid}", headers=op())).json())["tenantId"] == a

    for method, path, body in (
        ("PATCH", f"/v1/resources/{rid}", {"description": "hijacked"}),
        ("DELETE", f"/v1/resources/{rid}", None),
        ("POST", f"/v1/resources/{rid}/verify", None),
    ):
        r = await client.request(method, path, json=body, headers=as_b)
        problem = await r.json()
        assert (r.status, problem["code"]) == (404, "resource_not_found"), (method, problem)
    after = await (await client.get(f"/v1/resources/{rid}", headers=as_a)).json()
    assert after["description"] == created["description"]

    # public discovery names no tenant
    for path in ("/discovery/resources", "/discovery/search?query=weather", "/.well-known/x402"):
        r = await client.get(path)
        text = await r.text()
        assert r.status == 200, (path, text)
        for secret in (a, b, "tenantId", "tenant_id"):
            assert secret not in text, (path, secret)
    listed = await (await client.get("/discovery/resources")).json()
    assert [i["resource"] for i in listed["items"]] == ["https://a.example.com/weather"]


async def test_ratings_one_per_tenant_not_your_own_and_capped(client: Any) -> None:
    _, as_a = await _tenant(client, "tenant-a")
    _, as_b = await _tenant(client, "tenant-b")
    _, as_c = await _tenant(client, "tenant-c")
    ids = []
    for i in range(RATINGS_PER_HOUR + 1):
        r = await client.post("/v1/resources", json=resource(f"https://a.example.com/r{i}"), headers=as_a)
        assert r.status == 201, await r.text()
        ids.append((await r.json())["id"])
    first = ids[0]

    r = await client.post(f"/v1/resources/{first}/ratings", json={"rating": 5}, headers=as_a)
    assert (r.status, (await r.json())["code"]) == (403, "own_resource_rating")
    r = await client.post(f"/v1/resources/{first}/ratings", json={"rating": 5})
    assert (r.status, (await r.json())["code"]) == (401, "api_key_required")

    for stars in (1, 5, 3):  # B changes its mind: still one rating
        r = await client.post(f"/v1/resources/{first}/ratings", json={"rating": stars}, headers=as_b)
        rated = await r.json()
        assert r.status == 200, rated
        assert "tenantId" not in rated
    assert rated["rating"] == {"average": 3.0, "count": 1}
    r = await client.post(f"/v1/resources/{first}/ratings", json={"rating": 4}, headers=as_c)
    assert (await r.json())["rating"] == {"average": 3.5, "count": 2}

    # B has rated one resource; it may rate RATINGS_PER_HOUR in all, then 429
    for rid in ids[1:RATINGS_PER_HOUR]:
        r = await client.post(f"/v1/resources/{rid}/ratings", json={"rating": 4}, headers=as_b)
        assert r.status == 200, await r.text()
    r = await client.post(f"/v1/resources/{ids[-1]}/ratings", json={"rating": 4}, headers=as_b)
    problem = await r.json()
    assert (r.status, problem["code"]) == (429, "rating_rate_limited"), problem
    assert r.headers["Retry-After"] == "3600"
    # C's budget is its own
    r = await client.post(f"/v1/resources/{ids[-1]}/ratings", json={"rating": 2}, headers=as_c)
    assert r.status == 200
    assert (await r.json())["rating"] == {"average": 2.0, "count": 1}
