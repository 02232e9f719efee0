"""``/openapi.json`` documents exactly the routes the app serves; ``/docs`` renders it without a CDN."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chains.config import NetworkConfig
from x402.errors import BadRequest
from x402.service.app import create_app
from x402.service.platform.openapi import is_api_route
from x402.service.registry.hosts import URL_PATTERN
from x402.service.registry.models import check_http_url
from x402.service.settings import Settings
from x402.wire.networks import SOLANA_DEVNET


async def test_every_route_is_documented_and_vice_versa(settings: Settings, aiohttp_client: Any) -> None:
    app = create_app(settings)
    client = await aiohttp_client(app)
    served, html = set(), set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        if not is_api_route(route.resource.canonical):
            html.add(route.resource.canonical)
            continue
        served.add((route.method.lower(), route.resource.canonical))
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served - documented == set(), "routes without documentation"
    assert documented - served == set(), "documented routes the app does not serve"
    # the dashboard's HTML routes are served and deliberately not part of the JSON API's document
    assert {"/dashboard", "/dashboard/login", "/dashboard/{page}", "/dashboard/static/{path}"} <= html
    assert not any(p.startswith("/dashboard") for p in doc["paths"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (method, path)
            assert op["responses"], (method, path)


async def test_docs_page_is_self_contained(settings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/docs")
    page = await r.text()
    assert r.status == 200
    assert r.content_type == "text/html"
    assert "openapi.json" in page
    assert "http://" not in page
    assert "https://" not in page


async def test_verify_tx_networks_are_the_configured_ones(settings: Settings, aiohttp_client: Any) -> None:
    """The document is built from the running app's settings: verify-tx accepts exactly its networks."""
    nets = (
        NetworkConfig("eip155:31337", ("http://127.0.0.1:1",)),
        NetworkConfig(SOLANA_DEVNET, ("http://127.0.0.1:1",)),
    )
    client = await aiohttp_client(create_app(settings.with_(networks=nets)))
    doc = await (await client.get("/openapi.json")).json()
    network = doc["components"]["schemas"]["VerifyTxRequest"]["properties"]["network"]
    assert network["enum"] == ["eip155:31337", SOLANA_DEVNET]


def test_url_pattern_is_no_looser_than_the_server() -> None:
    """Every URL the documented pattern allows, check_http_url accepts; what it refuses, the pattern refuses."""
    pattern = re.compile(URL_PATTERN)
    allowed = [
        "http://a.com",
        "https://x402.org/p?q=1#f",
        "http://localhost:8080/",
        "https://1.2.3.4:65535/x",
        "http://[::1]/",
        "http://[fe80::1:2]:1/",
        "https://a-b.c.d.example.",
    ]
    for url in allowed:
        assert pattern.fullmatch(url), url
        assert check_http_url(url) == url
    refused = ["http://0", "http://1.2.3.256", "http://a.1", "http://xn--a.com", "http://a..b", "ftp://a.com"]
    refused += ["http://a.com:0", "http://a.com:65536", "http://[::1::]/", "http://-a.com", "http://a b.com"]
    for url in refused:
        assert not pattern.fullmatch(url), url
        with pytest.raises(BadRequest):
            check_http_url(url)
