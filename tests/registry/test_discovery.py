"""GET /discovery/resources: the exact bazaar shape (architecture.md §7.2), filters, offset pagination, limits."""

from __future__ import annotations

import re
from typing import Any

from tests.registry.conftest import PAY_TO, USDC, accept, bazaar, resource
from x402.service.app import create_app
from x402.service.settings import Settings


async def test_shape_filters_and_pagination(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/discovery/resources")
    assert await r.json() == {"x402Version": 2, "items": [], "pagination": {"limit": 20, "offset": 0, "total": 0}}

    body = resource(
        "https://api.example.com/weather",
        serviceName="Weather",
        tags=["weather"],
        iconUrl="https://api.example.com/icon.png",
        extensions=bazaar(),
    )
    r = await client.post("/v1/resources", json=body)
    rid = (await r.json())["id"]
    for i in range(24):
        await client.post("/v1/resources", json=resource(f"https://api.example.com/r{i}", accepts=[accept(str(i + 1))]))

    r = await client.get("/discovery/resources", params={"limit": "1", "offset": "24"})
    page = await r.json()
    assert page["pagination"] == {"limit": 1, "offset": 24, "total": 25}
    (item,) = page["items"]  # newest first: the first one registered is last
    last_updated = item.pop("lastUpdated")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", last_updated)
    assert item == {
        "resource": "https://api.example.com/weather",
        "type": "http",
        "x402Version": 2,
        "accepts": [
            {
                "scheme": "exact",
                "network": "eip155:84532",
                "amount": "10000",
                "asset": USDC,
                "payTo": PAY_TO,
                "maxTimeoutSeconds": 60,
                "extra": {"name": "USDC", "version": "2"},
            }
        ],
        "description": "A paid resource",
        "mimeType": "application/json",
        "serviceName": "Weather",
        "tags": ["weather"],
        "iconUrl": "https://api.example.com/icon.png",
        "extensions": bazaar(),
        "metadata": {
            "id": rid,
            "method": "GET",
            "verification": "unverified",
            "status": "unknown",
            "uptime": None,
            "rating": None,
            "ratingCount": 0,
            "settledCount": 0,
            "minPrice": "10000",
        },
    }

    seen: list[str] = []
    for offset in range(0, 25, 10):
        r = await client.get("/discovery/resources", params={"limit": "10", "offset": str(offset)})
        page = await r.json()
        assert page["pagination"]["total"] == 25
        seen += [i["resource"] for i in page["items"]]
    assert len(seen) == len(set(seen)) == 25

    r = await client.get("/discovery/resources", params={"offset": "100"})
    assert (await r.json())["items"] == []

    await client.post(
        "/v1/resources",
        json=resource(
            "https://mcp.example.com/mcp", type="mcp", tool="echo", accepts=[accept(pay_to="0x" + "cd" * 20)]
        ),
    )
    r = await client.get("/discovery/resources", params={"type": "mcp"})
    (only,) = (await r.json())["items"]
    assert only["type"] == "mcp"
    r = await client.get("/discovery/resources", params={"payTo": "0x" + "cd" * 20})
    assert [i["resource"] for i in (await r.json())["items"]] == ["https://mcp.example.com/mcp"]
    r = await client.get("/discovery/resources", params={"network": "eip155:8453"})
    assert (await r.json())["pagination"]["total"] == 0
    r = await client.get("/discovery/resources", params={"scheme": "exact", "network": "eip155:84532", "limit": "100"})
    assert (await r.json())["pagination"]["total"] == 26


async def test_limit_and_offset_validation(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    for params, code in (
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"limit": "-1"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"offset": "-1"}, "invalid_offset"),
        ({"type": "soap"}, "invalid_type"),
    ):
        r = await client.get("/discovery/resources", params=params)
        body = await r.json()
        assert (r.status, body["code"]) == (400, code), params
    for limit in ("1", "100"):
        r = await client.get("/discovery/resources", params={"limit": limit})
        assert r.status == 200


async def test_supported_lists_bazaar(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/supported")
    assert sorted((await r.json())["extensions"]) == ["bazaar", "payment-identifier"]


async def test_empty_parameters_are_documented_defaults(aiohttp_client: Any, settings: Settings) -> None:
    """``type=``, ``limit=`` and ``offset=`` mean the default; the OpenAPI document says so (Schemathesis checks it)."""
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/discovery/resources", params={"type": "", "limit": "", "offset": ""})
    assert r.status == 200
    assert (await r.json())["pagination"] == {"limit": 20, "offset": 0, "total": 0}
    doc = await (await client.get("/openapi.json")).json()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/discovery/resources"]["get"]["parameters"]}
    assert "" in params["type"]["enum"]
    assert {"const": ""} in params["limit"]["anyOf"]
    assert {"const": ""} in params["offset"]["anyOf"]
