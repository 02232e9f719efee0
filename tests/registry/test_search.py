"""GET /discovery/search: text matching, every filter, cursor pages, and the documented ranking order."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.registry.conftest import accept, resource
from x402.service.app import create_app
from x402.service.settings import Settings

SOL_PAY_TO = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
SOLANA_DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"


async def _register(client: Any, body: dict[str, Any]) -> str:
    r = await client.post("/v1/resources", json=body)
    out = await r.json()
    assert r.status == 201, out
    return str(out["id"])


async def _search(client: Any, **params: Any) -> list[str]:
    r = await client.get("/discovery/search", params=params)
    body = await r.json()
    assert r.status == 200, body
    return [item["resource"] for item in body["resources"]]


async def test_register_then_search_by_text_and_each_filter(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    await _register(
        client,
        resource(
            "https://wx.example.com/forecast",
            serviceName="Weather",
            description="Hourly forecasts for any city",
            tags=["climate"],
            category="data",
            accepts=[accept("5000")],
        ),
    )
    await _register(
        client,
        resource(
            "https://quotes.example.com/stocks",
            serviceName="Stock quotes",
            description="Real-time equity prices",
            tags=["finance"],
            category="finance",
            accepts=[
                accept(
                    "200000",
                    network=SOLANA_DEVNET,
                    pay_to=SOL_PAY_TO,
                    asset="4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
                )
            ],
        ),
    )
    await _register(
        client,
        resource(
            "https://mcp.example.com/mcp",
            type="mcp",
            tool="translate",
            serviceName="Translator",
            description="Translate text between languages",
            accepts=[accept("100", scheme="upto")],
        ),
    )
    wx, stocks, mcp = (
        "https://wx.example.com/forecast",
        "https://quotes.example.com/stocks",
        "https://mcp.example.com/mcp",
    )

    assert await _search(client, query="weather") == [wx]  # service name
    assert await _search(client, query="forecasts") == [wx]  # description, stemmed
    assert await _search(client, query="climate") == [wx]  # tag
    assert await _search(client, query="quotes") == [stocks]  # url words too
    assert await _search(client, query="translate languages") == [mcp]
    assert await _search(client, query="weather -hourly") == []  # websearch syntax
    assert await _search(client, query="nothing matches this") == []

    assert set(await _search(client)) == {wx, stocks, mcp}  # no query: everything, ranked
    assert await _search(client, network=SOLANA_DEVNET) == [stocks]
    assert set(await _search(client, network="eip155:84532")) == {wx, mcp}
    assert set(await _search(client, network="base-sepolia")) == {wx, mcp}  # v1 name of the same chain
    assert await _search(client, category="finance") == [stocks]
    assert await _search(client, type="mcp") == [mcp]
    assert set(await _search(client, type="http")) == {wx, stocks}
    assert set(await _search(client, maxPrice="5000")) == {wx, mcp}
    assert await _search(client, maxPrice="99") == []
    assert await _search(client, payTo=SOL_PAY_TO) == [stocks]
    assert await _search(client, scheme="upto") == [mcp]
    assert await _search(client, query="weather", network=SOLANA_DEVNET) == []

    for params, code in (
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"maxPrice": "0.5"}, "invalid_max_price"),
        ({"type": "ftp"}, "invalid_type"),
        ({"cursor": "garbage!"}, "invalid_cursor"),
        ({"query": "x" * 300}, "invalid_query"),
    ):
        r = await client.get("/discovery/search", params=params)
        assert (r.status, (await r.json())["code"]) == (400, code), params


async def test_search_shape_and_cursor_pages(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    for i in range(5):
        await _register(client, resource(f"https://api.example.com/r{i}", serviceName=f"Maps {i}"))
    r = await client.get("/discovery/search", params={"query": "maps", "limit": "2"})
    page = await r.json()
    assert set(page) == {"x402Version", "resources", "pagination"}
    assert page["x402Version"] == 2
    assert page["pagination"]["limit"] == 2
    item = page["resources"][0]
    assert {"resource", "type", "x402Version", "accepts", "lastUpdated", "metadata"} <= set(item)
    seen = [i["resource"] for i in page["resources"]]
    while page["pagination"]["cursor"]:
        r = await client.get(
            "/discovery/search", params={"query": "maps", "limit": "2", "cursor": page["pagination"]["cursor"]}
        )
        page = await r.json()
        seen += [i["resource"] for i in page["resources"]]
    assert sorted(seen) == [f"https://api.example.com/r{i}" for i in range(5)]
    # any cursor of the documented shape is a position: past the last row (or past MAX_OFFSET) it is an empty page
    for deep in ("5", "10001", "999999999"):
        r = await client.get("/discovery/search", params={"query": "maps", "cursor": deep})
        assert r.status == 200, await r.text()
        assert (await r.json())["resources"] == []
        assert (await r.json())["pagination"]["cursor"] is None
    for bad in ("01", "-1", "1000000000", "eyJvIjoyfQ"):  # leading zero, sign, too long, the old base64 form
        r = await client.get("/discovery/search", params={"query": "maps", "cursor": bad})
        assert (r.status, (await r.json())["code"]) == (400, "invalid_cursor"), bad


# name, fields, signals: (verification, probes ok/total, status, ratings (sum, count), settled volume, age in days)
CATALOG: list[tuple[str, dict[str, Any], tuple[str, tuple[int, int], str, tuple[int, int], int, int]]] = [
    ("best", {"serviceName": "Weather"}, ("verified", (100, 100), "up", (96, 20), 10**11, 0)),
    ("described", {"description": "weather for ships"}, ("verified", (99, 100), "up", (90, 20), 10**9, 1)),
    ("popular", {"tags": ["weather"]}, ("verified", (100, 100), "up", (100, 20), 10**12, 0)),
    ("new", {"serviceName": "Weather Pro"}, ("unverified", (0, 0), "unknown", (0, 0), 0, 0)),
    ("down", {"serviceName": "Weather"}, ("verified", (50, 100), "down", (96, 20), 10**11, 0)),
    ("stale", {"description": "weather for ships"}, ("verified", (99, 100), "up", (90, 20), 10**9, 365)),
    ("urlonly", {}, ("unverified", (0, 0), "unknown", (0, 0), 0, 0)),
    ("failed", {"serviceName": "Weather"}, ("failed", (100, 100), "up", (100, 20), 10**12, 0)),
    ("unrelated", {"serviceName": "Stock quotes"}, ("verified", (100, 100), "up", (100, 20), 10**12, 0)),
]


@pytest.mark.parametrize("query", ["weather"])
async def test_fixture_catalog_ranks_in_documented_order(
    aiohttp_client: Any, settings: Settings, database_url: str, query: str
) -> None:
    client = await aiohttp_client(create_app(settings))
    for name, fields, _ in CATALOG:
        path = f"weather-{name}" if name == "urlonly" else name
        await _register(client, {**resource(f"https://{name}.example.com/{path}", description=""), **fields})
    conn = await asyncpg.connect(database_url)
    try:
        for name, _, (verification, (ok, total), status, (rsum, rcount), volume, age) in CATALOG:
            await conn.execute(
                """UPDATE resources SET verification_status = $2, probes_ok = $3, probes_total = $4, status = $5,
                       rating_sum = $6, rating_count = $7, settled_volume = $8,
                       last_updated = now() - make_interval(days => $9)
                   WHERE url LIKE $1""",
                f"https://{name}.example.com/%",
                verification,
                ok,
                total,
                status,
                rsum,
                rcount,
                volume,
                age,
            )
    finally:
        await conn.close()
    r = await client.get("/discovery/search", params={"query": query})
    body = await r.json()
    order = [i["resource"].split("//")[1].split(".")[0] for i in body["resources"]]
    scores = [i["metadata"]["score"] for i in body["resources"]]
    assert scores == sorted(scores, reverse=True)
    # the best name match first; a description (B) match with good signals, then a tag (C) match carried by
    # popularity; age costs "stale" the recency share; an unverified newcomer matching by name sits below those
    # but above a verified twin of "best" that is down; a URL-only match last; failed and non-matching absent
    assert order == ["best", "described", "popular", "stale", "new", "down", "urlonly"], list(
        zip(order, scores, strict=True)
    )
