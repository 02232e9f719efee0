"""The whole provider loop on the in-memory fake chain: 402 -> pay -> verify -> settle -> receipt, where the chain
is not the point (the same loop on anvil is test_paywall_chain.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from chains import fake
from chains.fake import FakeLedger, FakePayer
from tests.paywall.conftest import AMOUNT, Provider, ProviderFactory
from x402.client import PaymentPolicy, X402Client
from x402.paywall import REPLAYED
from x402.wire.codec import PAYMENT_REQUIRED, PAYMENT_SIGNATURE, decode_payment_required, encode_header
from x402.wire.models import PaymentPayload


@pytest.fixture
def ledger(fake_ledger: FakeLedger) -> FakeLedger:
    """The fake chain of this test."""
    return fake_ledger


@pytest.fixture
async def provider(make_fake_provider: ProviderFactory) -> Provider:
    """A service app serving fake:1 through the fake adapter, with the paywall on /paid, /fails, /raises, /hooked."""
    provider: Provider = await make_fake_provider()
    return provider


@pytest.fixture
def payer(ledger: FakeLedger) -> FakePayer:
    """A payer holding 1,000,000 FAKEUSD."""
    key = FakePayer()
    ledger.mint(key.address, 1_000_000)
    return key


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


def client(http: aiohttp.ClientSession, payer: FakePayer) -> X402Client:
    """Our payer client with a fake-chain signer."""
    return X402Client(http, [payer], PaymentPolicy(allowed_assets=[fake.ASSET]))


async def test_pay_verify_settle_receipt(
    provider: Provider, payer: FakePayer, ledger: FakeLedger, http: aiohttp.ClientSession
) -> None:
    unpaid = await provider.client.get("/paid")
    assert unpaid.status == 402
    [offer] = decode_payment_required(unpaid.headers[PAYMENT_REQUIRED]).accepts
    assert (offer.network, offer.asset, offer.amount) == (fake.NETWORK, fake.ASSET, str(AMOUNT))

    resp = await client(http, payer).get(provider.url("/paid"))
    assert resp.status == 200, resp.text()
    assert resp.json() == {"ok": True}
    assert resp.settlement is not None
    assert resp.settlement.success is True
    assert resp.settlement.network == fake.NETWORK
    assert resp.settlement.payer == payer.address
    assert ledger.txs[resp.settlement.transaction].amount == AMOUNT  # the receipt names the landed transfer
    assert ledger.balance(provider.pay_to) == AMOUNT
    assert ledger.balance(payer.address) == 1_000_000 - AMOUNT
    (seen,) = provider.seen
    assert seen.payer == payer.address


async def test_handler_failure_charges_nothing(
    provider: Provider, payer: FakePayer, ledger: FakeLedger, http: aiohttp.ClientSession
) -> None:
    resp = await client(http, payer).get(provider.url("/fails"))
    assert resp.status == 500
    assert resp.settlement is None
    assert provider.calls["fails"] == 1
    assert ledger.balance(payer.address) == 1_000_000
    assert ledger.txs == {}


async def test_balance_gone_before_settle_is_402_with_failure_receipt(
    provider: Provider, payer: FakePayer, ledger: FakeLedger, http: aiohttp.ClientSession
) -> None:
    async def drain() -> None:  # the payer spends everything while the handler runs
        ledger.transfer(payer.address, FakePayer().address, ledger.balance(payer.address))

    provider.hooks["hooked"] = drain
    resp = await client(http, payer).get(provider.url("/hooked"))
    assert resp.status == 402, resp.text()
    assert provider.calls["hooked"] == 1
    assert resp.settlement is not None
    assert resp.settlement.success is False
    assert resp.settlement.error_reason == fake.INSUFFICIENT_FUNDS
    assert ledger.balance(provider.pay_to) == 0


async def test_one_payment_buys_one_response(provider: Provider, payer: FakePayer, ledger: FakeLedger) -> None:
    offer = provider.paywall.challenges.get(provider.paywall.routes[("GET", "/paid")], provider.url("/paid"))
    accepted = offer.requirements[0]
    header = encode_header(PaymentPayload(accepted=accepted, payload=payer.sign(accepted)))
    first, *rest = await asyncio.gather(
        *(provider.client.get("/paid", headers={PAYMENT_SIGNATURE: header}) for _ in range(4))
    )
    statuses = sorted([first.status, *(r.status for r in rest)])
    assert statuses == [200, 402, 402, 402], statuses
    later = await provider.client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert later.status == 402
    assert decode_payment_required(later.headers[PAYMENT_REQUIRED]).error in (REPLAYED, fake.NONCE_USED)
    assert provider.calls["paid"] == 1
    assert ledger.balance(provider.pay_to) == AMOUNT


async def test_forged_payment_is_refused(provider: Provider, payer: FakePayer, ledger: FakeLedger) -> None:
    offer = provider.paywall.challenges.get(provider.paywall.routes[("GET", "/paid")], provider.url("/paid"))
    accepted = offer.requirements[0]
    forged = payer.sign(accepted, signer=FakePayer())
    r = await provider.client.get(
        "/paid", headers={PAYMENT_SIGNATURE: encode_header(PaymentPayload(accepted=accepted, payload=forged))}
    )
    assert r.status == 402
    assert decode_payment_required(r.headers[PAYMENT_REQUIRED]).error == fake.SIGNATURE_INVALID
    assert provider.calls["paid"] == 0
    assert ledger.balance(payer.address) == 1_000_000


async def test_paid_routes_list_themselves_and_a_listed_route_can_be_bought(
    make_fake_provider: ProviderFactory, ledger: FakeLedger, payer: FakePayer, http: aiohttp.ClientSession
) -> None:
    """Discovery -> 402 -> pay -> receipt on the fake chain: the registry lists what the paywall sells."""
    p = await make_fake_provider(public_url="https://shop.example")
    r = await p.client.get("/discovery/resources", params={"payTo": p.pay_to})
    page = await r.json()
    assert r.status == 200, page
    item = next(i for i in page["items"] if i["resource"] == "https://shop.example/paid")
    assert (item["accepts"][0]["network"], item["accepts"][0]["amount"]) == (fake.NETWORK, str(AMOUNT))
    resp = await client(http, payer).get(p.url("/paid"))  # the listed route, served here
    assert resp.status == 200, resp.text()
    assert resp.settlement is not None
    assert resp.settlement.success is True
    assert ledger.balance(p.pay_to) == AMOUNT
