"""Interop with the official x402 TypeScript SDKs (tests/interop): their client pays our paywall, and our Python
payer client pays an official ``@x402/express`` server that settles through our facilitator."""

from __future__ import annotations

from typing import Any

import aiohttp

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key, token_balance
from tests.harness.node import node_server, run_node
from tests.paywall.conftest import AMOUNT, ProviderFactory, payer_client
from x402.service.app import create_app
from x402.service.settings import Settings


async def test_official_fetch_client_pays_our_paywall(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str
) -> None:
    p = await make_provider()
    before = await token_balance(devchain, address_of(payer_key))
    result = await run_node("fetch_pay.mjs", p.url("/paid"), env={"PAYER_KEY": payer_key})
    assert result["status"] == 200, result
    assert result["body"] == {"ok": True}
    receipt = result["paymentResponse"]
    assert receipt is not None, result
    assert receipt["success"] is True
    assert receipt["network"] == "eip155:31337"
    assert receipt["transaction"].startswith("0x")
    assert receipt["payer"].lower() == address_of(payer_key).lower()
    assert await token_balance(devchain, p.pay_to) == AMOUNT
    assert await token_balance(devchain, address_of(payer_key)) == before - AMOUNT
    assert p.calls["paid"] == 1


async def test_our_client_pays_official_express_server_via_our_facilitator(
    aiohttp_server: Any, service_settings: Settings, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    server = await aiohttp_server(create_app(service_settings))
    pay_to = address_of(new_key())
    env = {
        "PORT": 0,
        "FACILITATOR_URL": str(server.make_url("/")).rstrip("/"),
        "AMOUNT": AMOUNT,
        "ASSET": devchain.token_address,
        "TOKEN_NAME": devchain.token_name,
        "TOKEN_VERSION": devchain.token_version,
        "PAY_TO": pay_to,
    }
    async with node_server("express_server.mjs", env) as port:
        resp = await payer_client(http, devchain, payer_key).get(f"http://127.0.0.1:{port}/paid")
        assert resp.status == 200, resp.text()
    assert resp.json() == {"ok": True, "paid": True}
    assert resp.x402_version == 2
    assert resp.settlement is not None
    assert resp.settlement.success is True, resp.settlement
    assert resp.settlement.transaction.startswith("0x")
    assert await token_balance(devchain, pay_to) == AMOUNT


async def test_official_fetch_client_sends_a_payment_identifier(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str, database_url: str
) -> None:
    """The official client with the official payment-identifier helper pays a paywall that requires an id."""
    import asyncpg

    p = await make_provider(payment_identifier="required")
    the_id = "pay_official_client_0123456789"
    result = await run_node("fetch_pay.mjs", p.url("/paid"), env={"PAYER_KEY": payer_key, "PAYMENT_ID": the_id})
    assert result["status"] == 200, result
    assert result["paymentResponse"]["success"] is True
    conn = await asyncpg.connect(database_url)
    try:
        ids = [r["payment_identifier"] for r in await conn.fetch("SELECT payment_identifier FROM settlements")]
    finally:
        await conn.close()
    assert ids == [the_id]
    # a second run of the same purchase under the same id: served, not charged again
    again = await run_node("fetch_pay.mjs", p.url("/paid"), env={"PAYER_KEY": payer_key, "PAYMENT_ID": the_id})
    assert again["status"] == 200, again
    assert again["paymentResponse"]["transaction"] == result["paymentResponse"]["transaction"]
    assert await token_balance(devchain, p.pay_to) == AMOUNT
