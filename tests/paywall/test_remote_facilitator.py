"""Our paywall -> RemoteFacilitator -> our facilitator app over HTTP (aiohttp TestServer), on anvil."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key, token_balance
from tests.harness.services import free_port
from tests.paywall.conftest import AMOUNT, make_offer, payer_client
from x402.errors import FacilitatorUnavailable
from x402.facilitator.remote import RemoteFacilitator
from x402.paywall import Paywall
from x402.service.app import create_app
from x402.service.settings import Settings


async def _provider(aiohttp_client: Any, facilitator: RemoteFacilitator, offer: Any) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"remote": True})

    app = web.Application()
    app.router.add_get("/paid", handler)
    Paywall(facilitator, routes={("GET", "/paid"): offer}).setup(app)
    return await aiohttp_client(app)


async def test_paywall_through_remote_facilitator(
    aiohttp_server: Any,
    aiohttp_client: Any,
    service_settings: Settings,
    devchain: DevChain,
    payer_key: str,
    http: aiohttp.ClientSession,
) -> None:
    server = await aiohttp_server(create_app(service_settings))
    remote = RemoteFacilitator(str(server.make_url("/")))
    pay_to = address_of(new_key())
    provider = await _provider(aiohttp_client, remote, make_offer(devchain, pay_to))
    assert remote.started
    assert remote.supports(2, "exact", "eip155:31337")

    resp = await payer_client(http, devchain, payer_key).get(str(provider.make_url("/paid")))
    assert resp.status == 200, resp.text()
    assert resp.json() == {"remote": True}
    assert resp.settlement is not None
    assert resp.settlement.success is True
    assert await token_balance(devchain, pay_to) == AMOUNT

    # the facilitator goes away: a paying request gets a clear 503, never a 402
    await server.close()
    resp = await payer_client(http, devchain, payer_key).get(str(provider.make_url("/paid")))
    assert resp.status == 503
    body = resp.json()
    assert body["code"] == "facilitator_unavailable"
    assert body["detail"]
    assert await token_balance(devchain, pay_to) == AMOUNT


async def test_remote_facilitator_fails_closed_at_start() -> None:
    remote = RemoteFacilitator(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(FacilitatorUnavailable) as info:
        await remote.start()
    assert info.value.status == 503
    await remote.close()


async def test_remote_facilitator_redirects(aiohttp_server: Any) -> None:
    other = await aiohttp_server(web.Application())

    async def supported(request: web.Request) -> web.Response:
        return web.json_response({"kinds": [{"x402Version": 2, "scheme": "exact", "network": "eip155:1"}]})

    async def same_origin(request: web.Request) -> web.Response:
        raise web.HTTPFound("/real/supported")

    async def other_origin(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(other.make_url("/supported")))

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=502, text="bad gateway")

    app = web.Application()
    app.router.add_get("/real/supported", supported)
    app.router.add_get("/moved/supported", same_origin)
    app.router.add_get("/away/supported", other_origin)
    app.router.add_get("/broken/supported", broken)
    server = await aiohttp_server(app)

    async with RemoteFacilitator(str(server.make_url("/moved"))) as remote:
        assert remote.supports(2, "exact", "eip155:1")
    with pytest.raises(FacilitatorUnavailable, match="another origin"):
        await RemoteFacilitator(str(server.make_url("/away"))).start()
    with pytest.raises(FacilitatorUnavailable, match="502"):
        await RemoteFacilitator(str(server.make_url("/broken"))).start()
