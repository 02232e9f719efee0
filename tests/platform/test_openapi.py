"""``/openapi.json`` documents exactly the routes the app serves; ``/docs`` renders it without a CDN."""

from __future__ import annotations

from typing import Any

from x402.service.app import create_app
from x402.service.settings import Settings


async def test_every_route_is_documented_and_vice_versa(settings: Settings, aiohttp_client: Any) -> None:
    app = create_app(settings)
    client = await aiohttp_client(app)
    served = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        served.add((route.method.lower(), route.resource.canonical))
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served - documented == set(), "routes without documentation"
    assert documented - served == set(), "documented routes the app does not serve"
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
