"""Routes declared only with ``@paid`` (no ``routes=``) under the default ``Paywall.setup(app)``: start-up sees them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key
from tests.paywall.conftest import make_offer
from x402.errors import ConfigError
from x402.paywall import Offer, Paywall, paid
from x402.service.app import create_app
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.settings import Settings

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


async def test_unsupported_network_is_refused_at_start_up(aiohttp_client: Any, service_settings: Settings) -> None:
    app = create_app(service_settings)  # its facilitator settles only the dev chain

    @paid(Offer(amount=10, asset=BASE_USDC, network="eip155:8453", pay_to=address_of(new_key())))
    async def on_base(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/base", on_base)
    Paywall(AppFacilitator(app)).setup(app)
    with pytest.raises(ConfigError, match="does not support exact on eip155:8453"):
        await aiohttp_client(app)


async def test_paid_routes_are_registered_for_discovery(
    aiohttp_client: Any, service_settings: Settings, devchain: DevChain
) -> None:
    app = create_app(service_settings)
    pay_to = address_of(new_key())

    @paid(make_offer(devchain, pay_to, 123), description="decorated only")
    async def report(request: web.Request) -> web.Response:
        return web.json_response({"report": True})

    app.router.add_get("/report", report)
    paywall = Paywall(AppFacilitator(app), public_url="https://deco.example")
    paywall.setup(app)
    client = await aiohttp_client(app)
    r = await client.get("/discovery/resources", params={"payTo": pay_to})
    items = (await r.json())["items"]
    assert [(i["resource"], i["accepts"][0]["amount"]) for i in items] == [("https://deco.example/report", "123")]
    # the wrapped handler still answers as the decorated one (identity kept), behind the paywall
    assert (await client.get("/report")).status == 402
    route = next(r for r in app.router.routes() if r.resource is not None and r.resource.canonical == "/report")
    assert route.handler.__name__ == "report"
