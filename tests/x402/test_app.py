"""The app skeleton against a real Postgres: health, readiness, manifest, supported, metrics, errors."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from x402.errors import BadRequest
from x402.service.app import create_app
from x402.service.settings import Settings

ClientFactory = Any


async def test_health_ready_manifest_supported_metrics(settings: Settings, aiohttp_client: ClientFactory) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    r = await client.get("/healthz")
    assert r.status == 200
    assert (await r.json()) == {"status": "ok"}
    assert r.headers["X-Request-Id"]

    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200, body
    assert body["checks"]["postgres"] is True
    assert body["checks"]["cache"] == "in-process"

    r = await client.get("/.well-known/x402")
    wk = await r.json()
    assert r.status == 200
    assert wk["version"] == 1
    assert wk["resources"] == []
    assert wk["service"]["x402Versions"] == [1, 2]
    assert wk["service"]["endpoints"]["verify"].endswith("/verify")

    r = await client.get("/supported")
    assert r.status == 200
    assert (await r.json()) == {"kinds": [], "extensions": ["payment-identifier", "bazaar"], "signers": {}}

    r = await client.get("/metrics")
    text = await r.text()
    assert r.status == 200
    assert 'x402_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "x402_http_request_duration_seconds_bucket" in text


async def test_readyz_reports_redis(settings: Settings, aiohttp_client: ClientFactory, redis_url: str) -> None:
    client = await aiohttp_client(create_app(settings.with_(redis_url=redis_url)))
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200, body
    assert body["checks"]["redis"] is True


async def test_readyz_fails_when_redis_down(settings: Settings, aiohttp_client: ClientFactory) -> None:
    from tests.harness.services import free_port

    client = await aiohttp_client(create_app(settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}")))
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 503
    assert body["checks"]["redis"] is False
    assert body["checks"]["postgres"] is True


async def test_errors_are_problem_json_with_code(settings: Settings, aiohttp_client: ClientFactory) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise BadRequest("nope", code="some_code")

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = create_app(settings)
    app.router.add_get("/boom", boom)
    app.router.add_get("/crash", crash)
    client = await aiohttp_client(app)

    r = await client.get("/nowhere")
    assert r.status == 404
    assert r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "not_found"

    r = await client.post("/healthz")
    assert r.status == 405
    assert (await r.json())["code"] == "method_not_allowed"

    r = await client.get("/boom", headers={"X-Request-Id": "abc-123"})
    body = await r.json()
    assert r.status == 400
    assert body["code"] == "some_code"
    assert body["detail"] == "nope"
    assert body["requestId"] == "abc-123"
    assert r.headers["X-Request-Id"] == "abc-123"

    r = await client.get("/crash")
    body = await r.json()
    assert r.status == 500
    assert body["code"] == "internal_error"
    assert "secret" not in await r.text()


@pytest.mark.parametrize("rid", ["x" * 100, "bad id", "ü"])
async def test_bad_request_ids_are_replaced(settings: Settings, aiohttp_client: ClientFactory, rid: str) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/healthz", headers={"X-Request-Id": rid.encode().decode("latin-1")})
    assert r.status == 200
    assert r.headers["X-Request-Id"] != rid
    assert len(r.headers["X-Request-Id"]) == 16
