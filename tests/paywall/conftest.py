"""Paywall fixtures: a service app (in-process facilitator on the session anvil) with paid routes added."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from chains import fake
from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from chains.fake import FakeLedger, FakePayer
from tests.harness.evm import address_of, chain_settings, fund_eth, funded_payer, new_key
from tests.harness.fake import fake_app
from x402.client import PaymentPolicy, X402Client
from x402.paywall import PAYMENT, Offer, Paywall, VerifiedPayment
from x402.service.app import create_app
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.settings import Settings

AMOUNT = 10_000


@dataclass
class Provider:
    """A provider app under test: its client, paywall, the payTo address and handler call counts."""

    client: TestClient[Any, Any]
    paywall: Paywall
    pay_to: str
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    hooks: dict[str, Callable[[], Any]] = field(default_factory=dict)
    seen: list[VerifiedPayment] = field(default_factory=list)

    def url(self, path: str) -> str:
        """Absolute URL of a path on the test server."""
        return str(self.client.make_url(path))


def make_offer(chain: DevChain, pay_to: str, amount: int = AMOUNT, **kw: Any) -> Offer:
    """An offer in the dev token."""
    return Offer(
        amount=amount,
        asset=chain.token_address,
        network=chain.network,
        pay_to=pay_to,
        extra={"name": chain.token_name, "version": chain.token_version},
        description="paid test resource",
        mime_type="application/json",
        **kw,
    )


def add_handlers(app: web.Application, provider_ref: dict[str, Provider]) -> None:
    """``/paid`` (200), ``/fails`` (500), ``/raises`` (exception), ``/hooked`` (runs a test hook), ``/free``."""

    async def paid(request: web.Request) -> web.Response:
        provider_ref["p"].calls["paid"] += 1
        provider_ref["p"].seen.append(request[PAYMENT])
        return web.json_response({"ok": True})

    async def fails(request: web.Request) -> web.Response:
        provider_ref["p"].calls["fails"] += 1
        return web.json_response({"error": "upstream broke"}, status=500)

    async def raises(request: web.Request) -> web.Response:
        provider_ref["p"].calls["raises"] += 1
        raise RuntimeError("handler crashed")

    async def hooked(request: web.Request) -> web.Response:
        provider_ref["p"].calls["hooked"] += 1
        await provider_ref["p"].hooks["hooked"]()
        return web.json_response({"ok": True})

    async def free(request: web.Request) -> web.Response:
        return web.json_response({"free": True})

    app.router.add_get("/paid", paid)
    app.router.add_get("/fails", fails)
    app.router.add_get("/raises", raises)
    app.router.add_get("/hooked", hooked)
    app.router.add_get("/free", free)


@pytest.fixture
async def facilitator_key(devchain: DevChain) -> str:
    """A fresh facilitator signer with ETH for gas (never dev account 0)."""
    key = new_key()
    await fund_eth(devchain, address_of(key))
    return key


@pytest.fixture
def service_settings(devchain: DevChain, database_url: str, facilitator_key: str) -> Settings:
    """Settings of a service with the dev chain and a fresh facilitator signer."""
    return chain_settings(devchain, database_url, facilitator_key)


ProviderFactory = Callable[..., Any]


@pytest.fixture
def make_provider(aiohttp_client: Any, devchain: DevChain, service_settings: Settings) -> ProviderFactory:
    """Build a service app with the in-process facilitator and a Paywall on /paid, /fails, /raises, /hooked."""

    async def build(**paywall_kw: Any) -> Provider:
        pay_to = address_of(new_key())
        offer = make_offer(devchain, pay_to)
        app = create_app(service_settings)
        ref: dict[str, Provider] = {}
        add_handlers(app, ref)
        routes = {("GET", p): [offer] for p in ("/paid", "/fails", "/raises", "/hooked")}
        paywall = Paywall(AppFacilitator(app), routes=routes, **paywall_kw)
        paywall.setup(app)
        client = await aiohttp_client(app)
        ref["p"] = Provider(client=client, paywall=paywall, pay_to=pay_to)
        return ref["p"]

    return build


@pytest.fixture
async def payer_key(devchain: DevChain) -> str:
    """A fresh payer holding dev tokens."""
    return await funded_payer(devchain)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


def payer_client(session: aiohttp.ClientSession, chain: DevChain, key: str, **policy: Any) -> X402Client:
    """Our payer client allowed to spend the dev token."""
    return X402Client(session, [EvmSigner(key)], PaymentPolicy(allowed_assets=[chain.token_address], **policy))


@pytest.fixture
def fake_ledger() -> FakeLedger:
    """The in-memory fake chain of this test (chains/fake.py)."""
    return FakeLedger()


@pytest.fixture
def make_fake_provider(aiohttp_client: Any, database_url: str, fake_ledger: FakeLedger) -> ProviderFactory:
    """Like ``make_provider``, on the fake chain (for tests where the chain is not the point)."""

    async def build(**paywall_kw: Any) -> Provider:
        app = fake_app(database_url, fake_ledger, registry_probe_interval=0)
        ref: dict[str, Provider] = {}
        add_handlers(app, ref)
        pay_to = FakePayer().address
        offer = Offer(amount=AMOUNT, asset=fake.ASSET, network=fake.NETWORK, pay_to=pay_to, description="fake paid")
        routes = {("GET", p): [offer] for p in ("/paid", "/fails", "/raises", "/hooked")}
        paywall = Paywall(AppFacilitator(app), routes=routes, **paywall_kw)
        paywall.setup(app)
        ref["p"] = Provider(client=await aiohttp_client(app), paywall=paywall, pay_to=pay_to)
        return ref["p"]

    return build
