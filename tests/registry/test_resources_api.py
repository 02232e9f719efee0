"""POST/GET/PATCH/DELETE /v1/resources: validation codes, ownership, the stored shape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.registry.conftest import PAY_TO, accept, bazaar, resource
from x402.service.app import create_app
from x402.service.settings import Settings


async def test_register_get_patch_delete(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    body = resource(
        "https://api.example.com/weather",
        serviceName="Weather",
        tags=["weather", "forecast"],
        category="data",
        extensions=bazaar(),
        accepts=[accept("2500"), accept("1000", network="base-sepolia")],
    )
    r = await client.post("/v1/resources", json=body)
    created = await r.json()
    assert r.status == 201, created
    assert created["resource"] == "https://api.example.com/weather"
    assert created["method"] == "GET"
    assert created["minPrice"] == "1000"
    assert created["payTo"] == [PAY_TO]
    assert set(created["networks"]) == {"eip155:84532", "base-sepolia"}
    assert created["inputSchema"] == bazaar()["bazaar"]["info"]["input"]
    assert created["verification"]["status"] == "unverified"
    assert created["status"] == "unknown"

    r = await client.get(f"/v1/resources/{created['id']}")
    assert r.status == 200
    assert (await r.json())["serviceName"] == "Weather"

    r = await client.patch(f"/v1/resources/{created['id']}", json={"description": "Forecasts", "tags": ["rain"]})
    patched = await r.json()
    assert r.status == 200, patched
    assert (patched["description"], patched["tags"]) == ("Forecasts", ["rain"])

    r = await client.patch(f"/v1/resources/{created['id']}", json={"url": "https://other.example.com/"})
    assert (r.status, (await r.json())["code"]) == (400, "immutable_field")

    r = await client.post("/v1/resources", json=body)
    assert (r.status, (await r.json())["code"]) == (409, "resource_exists")

    r = await client.delete(f"/v1/resources/{created['id']}")
    assert r.status == 204
    r = await client.get(f"/v1/resources/{created['id']}")
    assert (r.status, (await r.json())["code"]) == (404, "resource_not_found")
    r = await client.get("/v1/resources/not-a-uuid")
    assert r.status == 404


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ({"url": "ftp://example.com/x"}, "invalid_url"),
        ({"url": "not a url"}, "invalid_url"),
        ({"url": "https://exa mple.com/x"}, "invalid_url"),
        ({"url": "https://exa%20mple.com/x"}, "invalid_url"),
        ({"url": "https://exa\tmple.com/x"}, "invalid_url"),
        ({"url": "https://a..example.com/x"}, "invalid_url"),
        ({"url": "https://-bad.example.com/x"}, "invalid_url"),
        ({"url": "https://under_score.example.com/x"}, "invalid_url"),
        ({"url": "https://ex<ample.com/x"}, "invalid_url"),
        ({"url": "https://" + "a" * 64 + ".example.com/x"}, "invalid_url"),
        ({"url": "https://xn--zz.example.com/x"}, "invalid_url"),
        ({"url": "https://1.2.3.999/x"}, "invalid_url"),
        ({"url": "https://[::zz]/x"}, "invalid_url"),
        ({"url": "https://api.example.com:0/x"}, "invalid_url"),
        ({"url": "https://api.example.com:70000/x"}, "invalid_url"),
        ({"url": "https://api.example.com:8o/x"}, "invalid_url"),
        ({"iconUrl": "https://icons .example.com/i.png"}, "invalid_icon_url"),
        ({"accepts": []}, "invalid_accepts"),
        ({"accepts": [accept("0.01")]}, "invalid_accepts"),
        ({"accepts": [accept("1e6")]}, "invalid_accepts"),
        ({"accepts": [{"scheme": "exact"}]}, "invalid_accepts"),
        ({"accepts": [accept(network="nowhere")]}, "invalid_accepts"),
        ({"method": "BREW"}, "invalid_method"),
        ({"type": "grpc"}, "invalid_type"),
        ({"x402Version": 3}, "invalid_x402_version"),
        ({"tags": ["a"] * 6}, "invalid_tags"),
        ({"tags": ["x" * 33]}, "invalid_tags"),
        ({"serviceName": "x" * 33}, "invalid_service_name"),
        ({"iconUrl": "javascript:alert(1)"}, "invalid_icon_url"),
        ({"category": "Not A Slug"}, "invalid_category"),
        ({"type": "mcp"}, "invalid_tool"),
        ({"inputSchema": "nope"}, "invalid_input_schema"),
    ],
)
async def test_validation_codes(aiohttp_client: Any, settings: Settings, patch: dict[str, Any], code: str) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources", json={**resource("https://api.example.com/x"), **patch})
    body = await r.json()
    assert (r.status, body["code"]) == (400, code), body


async def test_decimal_amount_message_names_the_field(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources", json=resource("https://api.example.com/x", accepts=[accept("$0.01")]))
    body = await r.json()
    assert body["code"] == "invalid_accepts"
    assert "accepts[0].amount must be an atomic integer string" in body["detail"]


async def test_private_urls_refused_unless_allowed(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings.with_(allow_private_outbound=False)))
    for url in ("http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://localhost/x", "http://[::1]/x"):
        r = await client.post("/v1/resources", json=resource(url))
        assert (r.status, (await r.json())["code"]) == (400, "private_address"), url


async def test_writes_need_credentials_when_keys_are_required(aiohttp_client: Any, settings: Settings) -> None:
    app = create_app(settings.with_(require_api_keys=True, admin_token="s3cret-admin-token"))
    client = await aiohttp_client(app)
    r = await client.post("/v1/resources", json=resource("https://api.example.com/a"))
    assert (r.status, (await r.json())["code"]) == (401, "api_key_required")
    admin = {"Authorization": "Bearer s3cret-admin-token"}
    r = await client.post("/v1/resources", json=resource("https://api.example.com/a"), headers=admin)
    created = await r.json()
    assert r.status == 201, created
    assert created["tenantId"] is None
    # reads of /v1/resources need a key too (public discovery is /discovery/*)
    r = await client.get(f"/v1/resources/{created['id']}")
    assert (r.status, (await r.json())["code"]) == (401, "api_key_required")
    r = await client.get(f"/v1/resources/{created['id']}", headers=admin)
    assert r.status == 200
    r = await client.delete(f"/v1/resources/{created['id']}")
    assert r.status == 401
    r = await client.delete(f"/v1/resources/{created['id']}", headers=admin)
    assert r.status == 204


async def test_tenant_keys_own_their_resources(aiohttp_client: Any, settings: Settings) -> None:
    import uuid

    from x402.errors import NotFound
    from x402.service.registry.access import Writer, check_owner

    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    check_owner(Writer(tenant_a, False), tenant_a)
    check_owner(Writer(None, True), tenant_b)
    for owner in (tenant_b, None):
        with pytest.raises(NotFound) as err:  # another tenant's object does not exist for the caller
            check_owner(Writer(tenant_a, False), owner)
        assert (err.value.status, err.value.code) == (404, "resource_not_found")


async def test_ratings(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources", json=resource("https://api.example.com/rated"))
    rid = (await r.json())["id"]
    for stars in (5, 4):
        r = await client.post(f"/v1/resources/{rid}/ratings", json={"rating": stars})
        assert r.status == 200
    # one rating per rater: the second replaced the first
    assert (await r.json())["rating"] == {"average": 4.0, "count": 1}
    r = await client.post(f"/v1/resources/{rid}/ratings", json={"rating": 6})
    assert (r.status, (await r.json())["code"]) == (400, "invalid_rating")


@pytest.mark.parametrize(
    "url",
    [
        "https://bücher.example/x",
        "https://xn--bcher-kva.example/x",
        "https://api.example.com:8443/x",
        "https://api.example.com./x",
        "http://[2001:db8::1]:8080/x",
        "http://93.184.216.34/x",
    ],
)
async def test_valid_hosts_are_accepted(aiohttp_client: Any, settings: Settings, url: str) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources", json=resource(url))
    assert r.status == 201, await r.text()
