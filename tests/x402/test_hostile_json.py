"""100,000-level JSON against a real ``x402 serve --dev`` process: every JSON endpoint, the paywall's payment header,
and as an upstream 402 / manifest for wallet pay, registry verify and import, and the background prober.

Before the bounded decoder (x402/wire/jsonlimits.py) each of these killed the process with SIGSEGV: ``eth_account``
raises the recursion limit to 100000, so the decoders' own depth guard never tripped before the C stack overflowed.
The server runs in a subprocess because a crash in this process would take pytest down with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.harness.procs import Service, x402_serve
from tests.harness.services import free_port
from tests.registry.conftest import resource

DEPTH = 100_000
DEEP_ARRAY = b"[" * DEPTH + b"]" * DEPTH
DEEP_OBJECT = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
#: deep inside an otherwise plausible x402 document, so no early type check stops the decoder first
DEEP_V1_402 = b'{"x402Version":1,"error":"pay","accepts":' + DEEP_ARRAY + b"}"
DEEP_V2 = b'{"x402Version":2,"accepted":' + DEEP_ARRAY + b',"payload":{}}'


@dataclass
class Hostile:
    """An upstream that answers 402s and discovery documents nested 100,000 levels deep."""

    base: str = ""
    hits: dict[str, int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def hostile_upstream() -> AsyncIterator[Hostile]:
    """Serve the hostile documents on 127.0.0.1 (a free port)."""
    state = Hostile()

    def count(request: web.Request) -> None:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1

    async def deep_body(request: web.Request) -> web.Response:
        count(request)
        return web.Response(status=402, body=DEEP_V1_402, content_type="application/json")

    async def deep_array(request: web.Request) -> web.Response:
        count(request)
        return web.Response(status=402, body=DEEP_ARRAY, content_type="application/json")

    async def deep_header(request: web.Request) -> web.Response:
        count(request)
        # as deep as a header aiohttp's client accepts (8190 bytes) can carry
        depth = 2_900
        doc = b'{"x402Version":2,"accepts":' + b"[" * depth + b"]" * depth + b"}"
        return web.Response(status=402, headers={"PAYMENT-REQUIRED": base64.b64encode(doc).decode()}, body=b"{}")

    async def manifest(request: web.Request) -> web.Response:
        count(request)
        return web.Response(body=DEEP_OBJECT if request.path.endswith("x402") else DEEP_ARRAY)

    app = web.Application()
    app.router.add_get("/deep-body", deep_body)
    app.router.add_get("/deep-array", deep_array)
    app.router.add_get("/deep-header", deep_header)
    app.router.add_get("/.well-known/x402", manifest)
    app.router.add_get("/openapi.json", manifest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def _alive(svc: Service, s: aiohttp.ClientSession) -> None:
    assert svc.proc.returncode is None, f"x402 serve died with {svc.proc.returncode}:\n{svc.text()[-3000:]}"
    async with s.get(svc.base_url + "/healthz") as r:
        assert r.status == 200


async def _problem(r: aiohttp.ClientResponse) -> dict[str, Any]:
    assert r.content_type == "application/problem+json", (r.status, await r.text())
    doc: dict[str, Any] = await r.json()
    return doc


@pytest.mark.slow
async def test_deep_json_never_takes_the_server_down(database_url: str) -> None:
    env = {
        "DATABASE_URL": database_url,
        "X402_DEV_ANVIL_PORT": str(free_port()),
        "X402_REQUIRE_API_KEYS": "false",
        "X402_MASTER_KEY": secrets.token_hex(32),
        "X402_ALLOW_PRIVATE_OUTBOUND": "true",
        "X402_REGISTRY_PROBE_INTERVAL": "1",
        # room for a 100,000-level payment header (266,668 base64 characters) to reach the decoder
        "X402_MAX_HEADER_BYTES": "300000",
    }
    async with (
        hostile_upstream() as up,
        x402_serve("--dev", env=env, port=free_port()) as svc,
        aiohttp.ClientSession() as s,
    ):
        base = svc.base_url
        async with s.get(base + "/.well-known/x402") as r:
            key = (await r.json())["dev"]["apiKey"]
        h = {"Authorization": f"Bearer {key}"}
        async with s.post(base + "/v1/wallets", json={"name": "w", "chains": ["evm"]}, headers=h) as r:
            assert r.status == 201, await r.text()
            wallet = (await r.json())["id"]
        async with s.post(base + "/v1/resources", json=resource(up.base + "/deep-body"), headers=h) as r:
            assert r.status == 201, await r.text()
            res = (await r.json())["id"]

        # 1. every documented operation that takes a JSON body, with real ids in the path
        async with s.get(base + "/openapi.json") as r:
            doc = await r.json()
        ids = {"{id}": wallet, "{name}": "deny", "{aid}": "00000000-0000-0000-0000-000000000000"}
        tried = []
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if "requestBody" not in op:
                    continue
                url = path.replace("{id}", res) if path.startswith("/v1/resources/") else path
                for k, v in ids.items():
                    url = url.replace(k, v)
                for body in (DEEP_ARRAY, DEEP_OBJECT):
                    headers = {**h, "Content-Type": "application/json"}
                    async with s.request(method, base + url, data=body, headers=headers) as r:
                        assert r.status < 500, (method, path, await r.text())
                        # a few operations ignore their body (verify, pause): those may succeed
                        code = (await _problem(r))["code"] if r.status >= 400 else "ignored"
                        tried.append((method, path, code))
        deep = {(m, p) for m, p, code in tried if code == "json_too_deep"}
        for must in ("/verify", "/settle", "/v1/wallets", "/v1/resources", "/v1/payments/verify-tx", "/v1/risk/rules"):
            assert any(p == must for _, p in deep), (must, tried)
        assert ("put", "/v1/wallets/{id}/policy") in deep
        assert ("post", "/v1/wallets/{id}/pay") in deep
        assert len(deep) >= 14, sorted(set(tried))
        await _alive(svc, s)

        # 2. the payment header on a paywalled route: a 402 naming the problem
        for doc_bytes in (DEEP_ARRAY, DEEP_V2):
            header = base64.b64encode(doc_bytes).decode()
            async with s.get(base + "/demo/paid", headers={"PAYMENT-SIGNATURE": header}) as r:
                assert r.status == 402, await r.text()
                assert (await r.json())["error"] == "json_too_deep"
        await _alive(svc, s)

        # 3. the wallet pays a URL whose 402 is deep (body, v1 body, header): a clean refusal each time
        for path in ("/deep-body", "/deep-array", "/deep-header"):
            async with s.post(f"{base}/v1/wallets/{wallet}/pay", json={"url": up.base + path}, headers=h) as r:
                problem = await _problem(r)
                assert r.status == 502, problem  # the upstream, not the caller, is at fault
                assert problem["code"] == "invalid_payment_required", problem
            assert up.hits.get(path, 0) >= 1
        await _alive(svc, s)

        # 4. registry verify of the deep 402 and import (crawl) of deep manifests: answered, not crashed
        async with s.post(f"{base}/v1/resources/{res}/verify", json={}, headers=h) as r:
            assert r.status < 500, await r.text()
            verdict = await r.json()
            assert "invalid_402" in str(verdict), verdict
        async with s.post(base + "/v1/resources/import", json={"origin": up.base}, headers=h) as r:
            assert r.status < 500, await r.text()
        assert up.hits.get("/.well-known/x402", 0) >= 1
        assert up.hits.get("/openapi.json", 0) >= 1
        await _alive(svc, s)

        # 5. the background prober reaches the deep 402 again on its own, and the process is still there
        seen = up.hits["/deep-body"]
        for _ in range(600):
            if up.hits["/deep-body"] >= seen + 2:
                break
            await asyncio.sleep(0.1)
        assert up.hits["/deep-body"] >= seen + 2, "the prober never probed the hostile resource"
        await _alive(svc, s)
