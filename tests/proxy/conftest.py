"""Routing-proxy rig: the wallet tests' paywalled upstream and service, plus a misbehaving upstream and helpers."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chains.evm.devchain import DevChain
from tests.harness.paychain import EvmChain
from tests.wallets.conftest import PRICE, Upstream, service, upstream, wallet_service
from x402.service.proxy.routes import RECEIPT_HEADER

__all__ = ["PRICE", "Upstream", "service", "upstream", "wallet_service"]

SLOW_SECONDS = 3.0
BIG_BYTES = 64 * 1024


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """On anvil: routed calls pay real EIP-3009 transfers (overrides the wallet tests' fake chain)."""
    return EvmChain(devchain)


@pytest.fixture
async def broken() -> AsyncIterator[str]:
    """An upstream that fails: 500, answers too slowly, or answers too much."""

    async def boom(request: web.Request) -> web.Response:
        return web.json_response({"error": "kaput"}, status=500)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_SECONDS)
        return web.json_response({"late": True})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * BIG_BYTES, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/boom", boom)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def accepts(devchain: DevChain, pay_to: str, amount: int) -> list[dict[str, Any]]:
    """One v2 exact offer in the dev chain's token."""
    return [
        {
            "scheme": "exact",
            "network": devchain.network,
            "amount": str(amount),
            "asset": devchain.token_address,
            "payTo": pay_to,
            "maxTimeoutSeconds": 120,
            "extra": {"name": devchain.token_name, "version": devchain.token_version},
        }
    ]


async def listing(
    client: TestClient[Any, Any], devchain: DevChain, url: str, pay_to: str, amount: int = PRICE
) -> dict[str, Any]:
    """List ``url`` in the registry through the API (as the client's tenant)."""
    body = {"url": url, "accepts": accepts(devchain, pay_to, amount), "description": "proxy test resource"}
    r = await client.post("/v1/resources", json=body)
    assert r.status == 201, await r.text()
    doc: dict[str, Any] = await r.json()
    return doc


def receipt(resp: Any) -> dict[str, Any]:
    """Our receipt header, decoded."""
    doc: dict[str, Any] = json.loads(base64.b64decode(resp.headers[RECEIPT_HEADER]))
    return doc
