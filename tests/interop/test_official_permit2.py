"""Permit2 and ``upto`` with the official x402 SDKs (npm @x402/* 2.27, PyPI x402 2.25) on a local anvil chain.

* the official clients (TS fetch and Python httpx: ``ExactEvmScheme`` with Permit2, ``UptoEvmScheme``) pay our
  paywall's Permit2 and metered routes;
* our payer client pays an official ``@x402/express`` server's Permit2 and ``upto`` routes, which settle through
  our facilitator (the express handler sets ``Settlement-Overrides`` with the official ``setSettlementOverrides``).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness import permit2 as h
from tests.harness.evm import address_of, chain_settings, funded_signer, new_key, token_balance
from tests.harness.node import node_server, run_node, run_official_python
from x402.client import PaymentPolicy, X402Client
from x402.paywall import Offer, Paywall, settlement_overrides
from x402.service.app import create_app
from x402.service.facilitator.inprocess import AppFacilitator

pytestmark = pytest.mark.slow

MAXIMUM = 40_000


async def _our_routes(aiohttp_client: Any, devchain: DevChain, database_url: str) -> tuple[Any, str]:
    """Our paywall with GET /metered (upto up to MAXIMUM, charging ?used=N) and GET /permit2 (exact, 5000)."""
    key, _ = await funded_signer(devchain)
    app = create_app(chain_settings(devchain, database_url, key))
    pay_to = address_of(new_key())
    extra = {"name": devchain.token_name, "version": devchain.token_version}

    async def metered(request: web.Request) -> web.Response:
        response = web.json_response({"ok": True})
        settlement_overrides(response, int(request.query["used"]))
        return response

    async def fixed(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/metered", metered)
    app.router.add_get("/permit2", fixed)
    routes = {
        ("GET", "/metered"): Offer(
            MAXIMUM, devchain.token_address, devchain.network, pay_to, extra=extra, scheme="upto"
        ),
        ("GET", "/permit2"): Offer(
            5_000, devchain.token_address, devchain.network, pay_to, extra={**extra, "assetTransferMethod": "permit2"}
        ),
    }
    Paywall(AppFacilitator(app), routes=routes).setup(app)
    return await aiohttp_client(app), pay_to


@pytest.mark.parametrize("official", ["typescript", "python"])
async def test_official_client_pays_our_upto_and_permit2_routes(
    official: str, aiohttp_client: Any, devchain: DevChain, database_url: str
) -> None:
    """@x402/fetch 2.27 and PyPI x402 2.25 (UptoEvmScheme, ExactEvmScheme with Permit2) pay our two routes."""
    client, pay_to = await _our_routes(aiohttp_client, devchain, database_url)
    payer = await h.permit2_payer(devchain)

    async def pay(path: str) -> dict[str, Any]:
        url, env = str(client.make_url(path)), {"PAYER_KEY": payer}
        if official == "typescript":
            return await run_node("fetch_pay.mjs", url, env=env)
        return await run_official_python("py_pay.py", url, env=env)

    result = await pay("/metered?used=777")
    assert result["status"] == 200, result
    receipt = result["paymentResponse"]
    assert receipt["success"] is True, receipt
    assert receipt["amount"] == "777"
    assert await token_balance(devchain, pay_to) == 777

    result = await pay("/permit2")
    assert result["status"] == 200, result
    assert result["paymentResponse"]["success"] is True
    assert await token_balance(devchain, pay_to) == 777 + 5_000


async def test_our_client_pays_official_express_upto_and_permit2_routes(
    aiohttp_server: Any, devchain: DevChain, database_url: str
) -> None:
    key, _ = await funded_signer(devchain)
    server = await aiohttp_server(create_app(chain_settings(devchain, database_url, key)))
    pay_to = address_of(new_key())
    env = {
        "PORT": 0,
        "FACILITATOR_URL": str(server.make_url("/")).rstrip("/"),
        "AMOUNT": MAXIMUM,
        "ASSET": devchain.token_address,
        "TOKEN_NAME": devchain.token_name,
        "TOKEN_VERSION": devchain.token_version,
        "PAY_TO": pay_to,
    }
    payer = await h.permit2_payer(devchain)
    policy = PaymentPolicy(allowed_assets=[devchain.token_address], max_amount=MAXIMUM)
    async with aiohttp.ClientSession() as session, node_server("express_server.mjs", env) as port:
        ours = X402Client(session, [EvmSigner(payer)], policy)
        metered = await ours.get(f"http://127.0.0.1:{port}/metered?used=1500")
        assert metered.status == 200, metered.text()
        permit2 = await ours.get(f"http://127.0.0.1:{port}/permit2")
        assert permit2.status == 200, permit2.text()
    assert metered.json() == {"ok": True, "metered": True}
    assert "Settlement-Overrides" not in metered.headers
    assert metered.settlement is not None
    assert metered.settlement.success is True, metered.settlement
    assert metered.charged == 1500
    assert permit2.charged == MAXIMUM
    assert await token_balance(devchain, pay_to) == 1500 + MAXIMUM
