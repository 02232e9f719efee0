"""Wallet test rig: a paywalled upstream (our paywall + in-process facilitator on anvil) and the wallet service."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, chain_settings, fund_eth, mint, new_key
from wallets.service import WalletOptions
from x402.paywall import Offer, Paywall, SiwxConfig
from x402.service.app import create_app
from x402.service.appkeys import DB, AppOptions
from x402.service.events.delivery import DeliveryOptions
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.siwx_store import PgSiwxStore
from x402.wire.codec import PAYMENT_REQUIRED, encode_header
from x402.wire.models import PaymentRequired, PaymentRequirements

PRICE = 10_000
X_NETWORK: web.AppKey[str] = web.AppKey("x_network")
X_ASSET: web.AppKey[str] = web.AppKey("x_asset")
X_PAY_TO: web.AppKey[str] = web.AppKey("x_pay_to")
X_TOKEN_NAME: web.AppKey[str] = web.AppKey("x_token_name")
X_TOKEN_VERSION: web.AppKey[str] = web.AppKey("x_token_version")
TIME_HEADER = "X-Upstream-Time"


@web.middleware
async def _timed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The upstream's own time (paywall verify + settle + handler), so benchmarks can subtract it."""
    started = time.perf_counter()
    resp = await handler(request)
    resp.headers[TIME_HEADER] = f"{time.perf_counter() - started:.6f}"
    return resp


@dataclass
class Upstream:
    """The paid upstream: URLs and who gets paid."""

    base_url: str
    pay_to: str
    price: int
    facilitator_url: str

    @property
    def paid_url(self) -> str:
        """The paywalled route."""
        return self.base_url + "/paid"


async def _always_402(request: web.Request) -> web.Response:
    """A 402 that never accepts a payment (drives failure streaks)."""
    req = PaymentRequirements(
        scheme="exact",
        network=request.app[X_NETWORK],
        amount=str(PRICE),
        asset=request.app[X_ASSET],
        pay_to=request.app[X_PAY_TO],
        max_timeout_seconds=60,
        extra={"name": request.app[X_TOKEN_NAME], "version": request.app[X_TOKEN_VERSION]},
    )
    header = encode_header(PaymentRequired(error="payment required", accepts=[req]))
    return web.Response(status=402, headers={PAYMENT_REQUIRED: header}, text="{}", content_type="application/json")


async def _upto_only(request: web.Request) -> web.Response:
    """A 402 offering only a scheme no wallet signs."""
    req = PaymentRequirements(
        scheme="upto",
        network=request.app[X_NETWORK],
        amount=str(PRICE),
        asset=request.app[X_ASSET],
        pay_to=request.app[X_PAY_TO],
        max_timeout_seconds=60,
    )
    header = encode_header(PaymentRequired(error="payment required", accepts=[req]))
    return web.Response(status=402, headers={PAYMENT_REQUIRED: header}, text="{}", content_type="application/json")


async def _free(request: web.Request) -> web.Response:
    return web.json_response({"free": True})


@pytest.fixture
async def upstream(devchain: DevChain, database_url: str) -> AsyncIterator[Upstream]:
    """An aiohttp app with our paywall on GET /paid, settled by a fresh, funded facilitator signer."""
    signer = new_key()
    await fund_eth(devchain, address_of(signer))
    pay_to = address_of(new_key())
    settings = chain_settings(devchain, database_url, signer)
    app = create_app(settings)
    app.middlewares.insert(0, _timed)

    async def paid(request: web.Request) -> web.Response:
        return web.json_response({"paid": True, "path": request.path})

    async def paid_nul(request: web.Request) -> web.Response:
        return web.Response(text="a\x00b", content_type="text/plain")  # valid UTF-8 that Postgres text refuses

    app.router.add_get("/paid", paid)
    app.router.add_get("/paid-nul", paid_nul)
    app.router.add_get("/always402", _always_402)
    app.router.add_get("/upto", _upto_only)
    app.router.add_get("/free", _free)
    app[X_NETWORK] = devchain.network
    app[X_ASSET] = devchain.token_address
    app[X_PAY_TO] = pay_to
    app[X_TOKEN_NAME] = devchain.token_name
    app[X_TOKEN_VERSION] = devchain.token_version
    offer = Offer(
        amount=PRICE,
        asset=devchain.token_address,
        network=devchain.network,
        pay_to=pay_to,
        extra={"name": devchain.token_name, "version": devchain.token_version},
        max_timeout_seconds=120,
    )
    Paywall(AppFacilitator(app), routes={("GET", "/paid"): offer, ("GET", "/paid-nul"): offer}).setup(app)
    # /signin: the same offer, and a payer who paid it signs in instead of paying again (Sign-In-With-X)
    app.router.add_get("/signin", paid)
    siwx = SiwxConfig(PgSiwxStore(lambda: app[DB]))
    Paywall(AppFacilitator(app), routes={("GET", "/signin"): offer}, siwx=siwx).setup(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        yield Upstream(base, pay_to, PRICE, base)
    finally:
        await server.close()


MASTER_KEY = secrets.token_hex(32)


def wallet_settings(devchain: DevChain, database_url: str, **kw: Any) -> Any:
    """Settings of the wallet service: dev chain, a master key, loopback upstreams allowed."""
    kw.setdefault("master_key", MASTER_KEY)
    kw.setdefault("allow_private_outbound", True)
    return chain_settings(devchain, database_url, new_key(), **kw)


FAST = WalletOptions(sweep_interval=0.5)
#: Webhooks retry within a test's time: dead-lettered after 3 quick failures (the 24 h window shortened to 0).
FAST_HOOKS = DeliveryOptions(backoff_base=0.05, backoff_cap=0.2, min_attempts=3, retry_window=0, interval=0.05)

ServiceFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


#: The operator token of keys-on services; the wallet scope set of the tenant key the tests act with.
ADMIN = "wallet-tests-operator-token-0123456789"
TENANT_SCOPES = ["verify", "settle", "wallets", "registry", "admin"]


@pytest.fixture(params=["keys-off", "keys-on"])
async def wallet_service(
    request: pytest.FixtureRequest, devchain: DevChain, database_url: str, aiohttp_client: Any
) -> ServiceFactory:
    """Build and serve a wallet service app (settings overrides as keywords).

    Every wallet test runs twice: API keys off (anonymous wallets), and API keys on with one real tenant key that
    the client sends by default (the same tenant for every service the test builds on its database). A test module
    whose tests make their own tenants and keys overrides this fixture with ``service_factory(..., keys_on=False)``.
    """
    return service_factory(devchain, database_url, aiohttp_client, keys_on=request.param == "keys-on")


def service_factory(devchain: DevChain, database_url: str, aiohttp_client: Any, *, keys_on: bool) -> ServiceFactory:
    """The factory behind ``wallet_service``."""
    tenant_key: list[str] = []

    async def make(**kw: Any) -> TestClient[Any, Any]:
        options = kw.pop("options", FAST)
        if keys_on:
            kw.setdefault("require_api_keys", True)
            kw.setdefault("admin_token", ADMIN)
        app = create_app(
            wallet_settings(devchain, database_url, **kw),
            options=AppOptions(wallet_options=options, webhook_options=FAST_HOOKS),
        )
        client: TestClient[Any, Any] = await aiohttp_client(app)
        if keys_on and kw["require_api_keys"]:
            if not tenant_key:
                tenant_key.append(await tenant_key_of(client))
            client.session.headers["Authorization"] = f"Bearer {tenant_key[0]}"
        return client

    return make


async def tenant_key_of(client: TestClient[Any, Any]) -> str:
    """A tenant and a key with every tenant scope, made through the operator API."""
    op = {"Authorization": f"Bearer {ADMIN}"}
    r = await client.post("/v1/tenants", json={"name": "wallet-tests"}, headers=op)
    assert r.status == 201, await r.text()
    tenant = (await r.json())["id"]
    r = await client.post(f"/v1/tenants/{tenant}/keys", json={"scopes": TENANT_SCOPES}, headers=op)
    assert r.status == 201, await r.text()
    key: str = (await r.json())["key"]
    return key


@pytest.fixture
async def service(wallet_service: ServiceFactory) -> TestClient[Any, Any]:
    """The default wallet service."""
    return await wallet_service()


async def new_wallet(
    client: TestClient[Any, Any], devchain: DevChain, policy: dict[str, Any] | None = None, fund: int = 10**9, **kw: Any
) -> dict[str, Any]:
    """Create an EVM wallet with ``policy`` and mint it ``fund`` TestUSDC."""
    r = await client.post("/v1/wallets", json={"name": "agent", "chains": ["evm"], "policy": policy or {}, **kw})
    assert r.status == 201, await r.text()
    wallet: dict[str, Any] = await r.json()
    if fund:
        await mint(devchain, wallet["addresses"]["evm"], fund)
    return wallet


async def pay(
    client: TestClient[Any, Any], wallet_id: str, url: str, *, headers: dict[str, str] | None = None, **body: Any
) -> tuple[int, dict[str, Any]]:
    """POST /v1/wallets/{id}/pay; (status, JSON)."""
    r = await client.post(f"/v1/wallets/{wallet_id}/pay", json={"url": url, **body}, headers=headers or {})
    return r.status, json.loads(await r.read())
