"""Pricing by use on the real anvil: an ``upto`` route whose handler reports the actual amount with
``Settlement-Overrides`` (stripped before the buyer sees the response), and an ``exact`` route paid by Permit2,
both paid by our client through the in-process facilitator."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness import permit2 as h
from tests.harness.evm import address_of, new_key, token_balance, tx_count
from x402.client import PaymentPolicy, X402Client
from x402.errors import PaymentRefused
from x402.paywall import PAYMENT, SETTLEMENT_OVERRIDES, Offer, Paywall, settlement_overrides
from x402.service.app import create_app
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.settings import Settings
from x402.wire.codec import PAYMENT_REQUIRED, decode_payment_required

pytestmark = pytest.mark.slow

MAXIMUM = 50_000


async def _provider(aiohttp_client: Any, chain: DevChain, settings: Settings) -> tuple[Any, str]:
    pay_to = address_of(new_key())
    extra = {"name": chain.token_name, "version": chain.token_version}
    metered = Offer(MAXIMUM, chain.token_address, chain.network, pay_to, extra=extra, scheme="upto")
    permit2 = Offer(
        7_000, chain.token_address, chain.network, pay_to, extra={**extra, "assetTransferMethod": "permit2"}
    )
    app = create_app(settings)

    async def meter(request: web.Request) -> web.Response:
        used = int(request.query.get("used", "-1"))
        response = web.json_response({"maximum": request[PAYMENT].requirements.amount})
        if used >= 0:
            settlement_overrides(response, used)
        elif used == -2:
            response.headers[SETTLEMENT_OVERRIDES] = '{"amount": "50001"}'  # above the signed maximum
        return response

    async def fixed(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/metered", meter)
    app.router.add_get("/permit2", fixed)
    Paywall(AppFacilitator(app), routes={("GET", "/metered"): metered, ("GET", "/permit2"): permit2}).setup(app)
    return await aiohttp_client(app), pay_to


def _client(session: aiohttp.ClientSession, chain: DevChain, key: str, **policy: Any) -> X402Client:
    return X402Client(session, [EvmSigner(key)], PaymentPolicy(allowed_assets=[chain.token_address], **policy))


async def test_upto_route_settles_what_the_handler_reports(
    aiohttp_client: Any, devchain: DevChain, service_settings: Settings, facilitator_key: str
) -> None:
    client, pay_to = await _provider(aiohttp_client, devchain, service_settings)
    r = await client.get("/metered")
    assert r.status == 402
    [offer] = decode_payment_required(r.headers[PAYMENT_REQUIRED]).accepts
    assert offer.scheme == "upto"
    assert offer.extra["facilitatorAddress"] == address_of(facilitator_key)  # copied from /supported

    payer = await h.permit2_payer(devchain)
    async with aiohttp.ClientSession() as session:
        # the cap counts the signed maximum: a cap below it refuses to sign at all
        with pytest.raises(PaymentRefused):
            await _client(session, devchain, payer, max_amount=MAXIMUM - 1).get(str(client.make_url("/metered")))
        payer_client = _client(session, devchain, payer, max_amount=MAXIMUM)

        paid = await payer_client.get(str(client.make_url("/metered?used=1234")))
        assert paid.status == 200, paid.text()
        assert SETTLEMENT_OVERRIDES not in paid.headers
        assert paid.json() == {"maximum": str(MAXIMUM)}
        assert paid.settlement is not None
        assert paid.settlement.amount == "1234"
        assert paid.charged == 1234
        assert await token_balance(devchain, pay_to) == 1234

        # nothing used: nothing charged, no transaction
        sent = await tx_count(devchain, address_of(facilitator_key))
        free = await payer_client.get(str(client.make_url("/metered?used=0")))
        assert free.status == 200
        assert free.settlement is not None
        assert (free.settlement.amount, free.settlement.transaction) == ("0", "")
        assert free.charged == 0
        assert await tx_count(devchain, address_of(facilitator_key)) == sent

        # no override: the maximum
        full = await payer_client.get(str(client.make_url("/metered")))
        assert full.charged == MAXIMUM
        assert await token_balance(devchain, pay_to) == 1234 + MAXIMUM

        # a handler reporting more than was signed: the provider's bug, nothing is charged
        bad = await payer_client.get(str(client.make_url("/metered?used=-2")))
        assert bad.status == 500
        assert bad.json()["code"] == "invalid_settlement_override"
        assert SETTLEMENT_OVERRIDES not in bad.headers
        assert await token_balance(devchain, pay_to) == 1234 + MAXIMUM


async def test_exact_permit2_route(aiohttp_client: Any, devchain: DevChain, service_settings: Settings) -> None:
    client, pay_to = await _provider(aiohttp_client, devchain, service_settings)
    async with aiohttp.ClientSession() as session:
        payer = await h.permit2_payer(devchain)
        paid = await _client(session, devchain, payer).get(str(client.make_url("/permit2")))
        assert paid.status == 200, paid.text()
        assert paid.charged == 7_000
        assert await token_balance(devchain, pay_to) == 7_000
        # a payer who never approved Permit2: 412, the client must approve once
        unapproved = await h.permit2_payer(devchain, approve=False)
        refused = await _client(session, devchain, unapproved).get(str(client.make_url("/permit2")))
        assert refused.status == 412
        assert decode_payment_required(refused.headers[PAYMENT_REQUIRED]).error == "permit2_allowance_required"
        assert await token_balance(devchain, pay_to) == 7_000
