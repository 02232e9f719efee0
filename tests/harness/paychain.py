"""The chain a paying test runs on, behind one small interface: the in-memory fake (chains/fake.py) or anvil.

Wallet tests where the chain is not the point (policy, caps, approvals, pause, events, idempotency, isolation)
run on ``FakeChain``; the tests of EVM signing and on-chain reconciliation run on ``EvmChain``. Both build the
service app and a paywalled seller the same way (``paywalled``), so a test module switches chain by overriding
one fixture (docs/architecture.md, "Tests").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from aiohttp.test_utils import TestServer

from chains import fake
from chains.config import AssetConfig, NetworkConfig
from chains.evm.devchain import DevChain
from chains.fake import FakeAdapter, FakeLedger, FakePayer, fake_factories
from tests.harness.evm import address_of, chain_settings, fund_eth, mint, new_key, token_balance
from x402.paywall import Offer, PaidRoute, Paywall, SiwxConfig
from x402.paywall.middleware import RouteKey
from x402.service.app import create_app
from x402.service.appkeys import DB
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.settings import Settings
from x402.service.siwx_store import PgSiwxStore


class PayChain(Protocol):
    """What a paying test needs of its chain."""

    @property
    def kind(self) -> str:
        """The wallet chain name (``POST /v1/wallets {"chains": [kind]}``; also the key of ``addresses``)."""
        ...

    @property
    def network(self) -> str:
        """The CAIP-2 network."""
        ...

    @property
    def asset(self) -> str:
        """The asset paid in."""
        ...

    @property
    def extra(self) -> Mapping[str, Any]:
        """The offer ``extra`` this chain's payers need (EVM: the token's EIP-712 name and version)."""
        ...

    async def settings(self, database_url: str, *, facilitator: bool = False, **kw: Any) -> Settings:
        """Service settings on this chain; ``facilitator``: with a signer that can pay settlement fees."""
        ...

    def app(self, settings: Settings, **kw: Any) -> web.Application:
        """The service app on this chain (``kw``: the other ``create_app`` keywords)."""
        ...

    def payee(self) -> str:
        """A fresh address to be paid."""
        ...

    async def fund(self, owner: str, amount: int) -> None:
        """Give ``owner`` ``amount`` of the asset."""
        ...

    async def balance(self, owner: str) -> int:
        """``owner``'s balance of the asset."""
        ...


def offer_on(chain: PayChain, pay_to: str, amount: int, **kw: Any) -> Offer:
    """An ``exact`` offer of ``amount`` of the chain's asset to ``pay_to``."""
    return Offer(amount=amount, asset=chain.asset, network=chain.network, pay_to=pay_to, extra=chain.extra, **kw)


def paywalled_app(
    chain: PayChain,
    settings: Settings,
    handlers: Mapping[str, Any],
    routes: Mapping[RouteKey, Offer | PaidRoute],
    *,
    middlewares: tuple[Any, ...] = (),
    siwx_routes: Mapping[RouteKey, Offer | PaidRoute] | None = None,
) -> web.Application:
    """A seller: the service app on ``chain`` (its own facilitator, in process) with ``GET`` ``handlers`` and our
    paywall over ``routes``; ``middlewares`` run first. ``siwx_routes`` get a second paywall that offers
    Sign-In-With-X, its entitlements in the app's Postgres."""
    app = chain.app(settings)
    for i, middleware in enumerate(middlewares):
        app.middlewares.insert(i, middleware)
    for path, handler in handlers.items():
        app.router.add_get(path, handler)
    Paywall(AppFacilitator(app), routes=routes).setup(app)
    if siwx_routes:
        siwx = SiwxConfig(PgSiwxStore(lambda: app[DB]))
        Paywall(AppFacilitator(app), routes=siwx_routes, siwx=siwx).setup(app)
    return app


async def serve(app: web.Application) -> TestServer:
    """``app`` started on 127.0.0.1 (a free port)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def paywalled(
    chain: PayChain,
    database_url: str,
    handlers: Mapping[str, Any],
    routes: Mapping[RouteKey, Offer | PaidRoute],
    *,
    middlewares: tuple[Any, ...] = (),
    siwx_routes: Mapping[RouteKey, Offer | PaidRoute] | None = None,
) -> TestServer:
    """``paywalled_app`` with a facilitator that can pay settlement fees, started on 127.0.0.1."""
    settings = await chain.settings(database_url, facilitator=True)
    app = paywalled_app(chain, settings, handlers, routes, middlewares=middlewares, siwx_routes=siwx_routes)
    return await serve(app)


@dataclass
class FakeChain:
    """The in-memory fake chain (one ledger shared by every app of the test)."""

    ledger: FakeLedger = field(default_factory=FakeLedger)
    kind: str = fake.FAMILY
    network: str = fake.NETWORK
    asset: str = fake.ASSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    async def settings(self, database_url: str, *, facilitator: bool = False, **kw: Any) -> Settings:
        """Settings serving fake:1 (the fake facilitator needs no key)."""
        net = NetworkConfig(self.network, ("fake://ledger",), assets=(AssetConfig(self.asset, name=self.asset),))
        return Settings(database_url=database_url, networks=(net,), log_level="warning", reconcile_interval=0, **kw)

    def app(self, settings: Settings, **kw: Any) -> web.Application:
        """The app with fake:1 served by the fake adapter (registered here, never by entry point)."""
        return create_app(settings, factories=fake_factories(FakeAdapter.serving(self.ledger)), **kw)

    def payee(self) -> str:
        """A fresh fake address."""
        return FakePayer().address

    async def fund(self, owner: str, amount: int) -> None:
        """Mint on the ledger."""
        self.ledger.mint(owner, amount, self.asset)

    async def balance(self, owner: str) -> int:
        """The ledger's balance."""
        return self.ledger.balance(owner, self.asset)


@dataclass
class EvmChain:
    """Anvil with the dev token (EIP-3009)."""

    devchain: DevChain
    kind: str = "evm"

    @property
    def network(self) -> str:
        """The dev chain's CAIP-2 id."""
        return self.devchain.network

    @property
    def asset(self) -> str:
        """The dev token."""
        return self.devchain.token_address

    @property
    def extra(self) -> Mapping[str, Any]:
        """The dev token's EIP-712 domain."""
        return {"name": self.devchain.token_name, "version": self.devchain.token_version}

    async def settings(self, database_url: str, *, facilitator: bool = False, **kw: Any) -> Settings:
        """Settings serving the dev chain; ``facilitator``: a fresh signer funded with ETH for gas."""
        signer = new_key()
        if facilitator:
            await fund_eth(self.devchain, address_of(signer))
        return chain_settings(self.devchain, database_url, signer, **kw)

    def app(self, settings: Settings, **kw: Any) -> web.Application:
        """The app (EVM is built in)."""
        return create_app(settings, **kw)

    def payee(self) -> str:
        """A fresh EVM address."""
        return address_of(new_key())

    async def fund(self, owner: str, amount: int) -> None:
        """Mint dev tokens."""
        await mint(self.devchain, owner, amount)

    async def balance(self, owner: str) -> int:
        """The dev token balance."""
        return await token_balance(self.devchain, owner)
