"""payment-identifier through the paywall (in-process and remote facilitator) and our payer client, on anvil."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness.evm import address_of, new_key, token_balance
from tests.paywall.conftest import AMOUNT, ProviderFactory, make_offer, payer_client
from x402.app import create_app
from x402.client.client import Challenge402, parse_challenge, payment_header
from x402.facilitator.remote import RemoteFacilitator
from x402.paywall import PaidRoute, Paywall, paid
from x402.settings import Settings
from x402.wire import payment_identifier as pid
from x402.wire.codec import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    decode_payment_required,
    decode_payment_response,
)


async def _journal(database_url: str) -> list[tuple[str | None, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT payment_identifier, status FROM settlements ORDER BY id")
    finally:
        await conn.close()
    return [(r["payment_identifier"], r["status"]) for r in rows]


async def _header(client: Any, path: str, key: str, identifier: str | None) -> str:
    """A payment header for ``path``'s challenge, signed by ``key``, with ``identifier`` when given."""
    r = await client.get(path)
    assert r.status == 402
    challenge: Challenge402 = parse_challenge(r.headers, await r.read())
    scheme_payload = await EvmSigner(key).create_payload(challenge.offers[0], 2)
    return payment_header(challenge, 0, scheme_payload, payment_id=identifier)[1]


async def test_declared_and_retried_without_paying_twice(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession, database_url: str
) -> None:
    p = await make_provider(payment_identifier="optional")
    r = await p.client.get("/paid")
    required = decode_payment_required(r.headers[PAYMENT_REQUIRED])
    assert required.extensions == {pid.KEY: {"info": {"required": False}, "schema": pid.SCHEMA}}

    client = payer_client(http, devchain, payer_key)
    first = await client.get(p.url("/paid"))
    assert first.status == 200, first.text()
    assert first.payment_id is not None
    assert pid.is_valid_id(first.payment_id)
    assert first.settlement is not None
    tx = first.settlement.transaction
    assert await _journal(database_url) == [(first.payment_id, "confirmed")]

    # the same purchase retried under its id (the client signs a fresh authorization): served, not charged again
    again = await client.get(p.url("/paid"), payment_id=first.payment_id)
    assert again.status == 200, again.text()
    assert again.payment_id == first.payment_id
    assert again.settlement is not None
    assert (again.settlement.success, again.settlement.transaction) == (True, tx)
    assert p.calls["paid"] == 2
    assert await token_balance(devchain, p.pay_to) == AMOUNT
    assert await _journal(database_url) == [(first.payment_id, "confirmed")]

    # the identical header again under its id: an explicit retry, the original receipt
    header = await _header(p.client, "/paid", payer_key, "pay_identical_header_retry_1")
    ok = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert ok.status == 200
    receipt = decode_payment_response(ok.headers[PAYMENT_RESPONSE])
    same = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert same.status == 200, await same.text()
    assert decode_payment_response(same.headers[PAYMENT_RESPONSE]).transaction == receipt.transaction
    assert await token_balance(devchain, p.pay_to) == 2 * AMOUNT

    # the same id for another purchase (another resource): 409, the handler does not run
    calls = p.calls["hooked"]
    clash = await client.get(p.url("/hooked"), payment_id=first.payment_id)
    assert clash.status == 409, clash.text()
    assert clash.json()["code"] == "payment_identifier_conflict"
    assert p.calls["hooked"] == calls
    assert await token_balance(devchain, p.pay_to) == 2 * AMOUNT


async def test_required_identifier(
    aiohttp_client: Any, service_settings: Settings, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    app = create_app(service_settings)
    pay_to = address_of(new_key())

    @paid(make_offer(devchain, pay_to), payment_identifier="required")
    async def strict(request: web.Request) -> web.Response:
        return web.json_response({"strict": True})

    app.router.add_get("/strict", strict)
    from x402.paywall.inprocess import AppFacilitator

    Paywall(AppFacilitator(app)).setup(app)
    client = await aiohttp_client(app)
    r = await client.get("/strict")
    extensions = decode_payment_required(r.headers[PAYMENT_REQUIRED]).extensions
    assert isinstance(extensions, dict)
    assert extensions[pid.KEY]["info"] == {"required": True}

    # a payer that ignores the extension: 400, nothing charged
    r = await client.get("/strict")
    challenge = parse_challenge(r.headers, await r.read())
    bare = Challenge402(2, challenge.offers, [], challenge.resource, None)
    header = payment_header(bare, 0, await EvmSigner(payer_key).create_payload(challenge.offers[0], 2))[1]
    r = await client.get("/strict", headers={PAYMENT_SIGNATURE: header})
    assert r.status == 400
    assert (await r.json())["code"] == "payment_identifier_required"
    # a malformed id: 400
    declared = {pid.KEY: {"info": {"required": True, "id": "too-short"}, "schema": pid.SCHEMA}}
    bad = Challenge402(2, challenge.offers, [], challenge.resource, declared)
    header = payment_header(bad, 0, await EvmSigner(payer_key).create_payload(challenge.offers[0], 2))[1]
    r = await client.get("/strict", headers={PAYMENT_SIGNATURE: header})
    assert r.status == 400
    assert (await r.json())["code"] == "invalid_payment_identifier"
    assert await token_balance(devchain, pay_to) == 0

    # our client sends one by itself
    res = await payer_client(http, devchain, payer_key).get(str(client.make_url("/strict")))
    assert res.status == 200, res.text()
    assert res.payment_id is not None
    assert await token_balance(devchain, pay_to) == AMOUNT


async def test_remote_facilitator_path(
    aiohttp_server: Any,
    aiohttp_client: Any,
    service_settings: Settings,
    devchain: DevChain,
    payer_key: str,
    http: aiohttp.ClientSession,
) -> None:
    server = await aiohttp_server(create_app(service_settings))
    pay_to = address_of(new_key())

    async def provider(amount: int) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response({"remote": True})

        app = web.Application()
        app.router.add_get("/paid", handler)
        route = PaidRoute((make_offer(devchain, pay_to, amount),), payment_identifier="optional")
        Paywall(RemoteFacilitator(str(server.make_url("/"))), routes={("GET", "/paid"): route}).setup(app)
        return await aiohttp_client(app)

    shop = await provider(AMOUNT)
    client = payer_client(http, devchain, payer_key)
    first = await client.get(str(shop.make_url("/paid")))
    assert first.status == 200, first.text()
    assert first.settlement is not None
    again = await client.get(str(shop.make_url("/paid")), payment_id=first.payment_id)
    assert again.status == 200, again.text()
    assert again.settlement is not None
    assert again.settlement.transaction == first.settlement.transaction
    assert await token_balance(devchain, pay_to) == AMOUNT

    # another shop (its own paywall state) on the same facilitator, another price, the same id: the facilitator's
    # 409 reaches the payer as a 409, not as a facilitator outage
    other = await provider(AMOUNT + 1)
    clash = await client.get(str(other.make_url("/paid")), payment_id=first.payment_id)
    assert clash.status == 409, clash.text()
    assert clash.json()["code"] == "payment_identifier_conflict"
    assert await token_balance(devchain, pay_to) == AMOUNT
