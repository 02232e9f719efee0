"""Wallet test rig: a paywalled upstream (our paywall + in-process facilitator) and the wallet service, on the
fake chain by default (``chain`` fixture; modules about a real chain override it with ``EvmChain``)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler

from tests.harness.paychain import FakeChain, PayChain, offer_on, paywalled
from wallets.service import WalletOptions
from x402.paywall import Offer
from x402.service.appkeys import AppOptions
from x402.service.events.delivery import DeliveryOptions
from x402.service.settings import Settings
from x402.wire.codec import PAYMENT_REQUIRED, encode_header
from x402.wire.models import PaymentRequired

PRICE = 10_000
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


def _challenge(offer: Offer) -> Handler:
    """A handler answering 402 for ``offer`` and never accepting a payment (drives failure streaks)."""
    header = encode_header(PaymentRequired(error="payment required", accepts=[offer.requirements()]))

    async def challenge(request: web.Request) -> web.Response:
        return web.Response(status=402, headers={PAYMENT_REQUIRED: header}, text="{}", content_type="application/json")

    return challenge


async def _free(request: web.Request) -> web.Response:
    return web.json_response({"free": True})


@pytest.fixture
def chain() -> PayChain:
    """The chain the wallet tests pay on: the in-memory fake (a module about a real chain overrides this)."""
    return FakeChain()


@pytest.fixture
async def upstream(chain: PayChain, database_url: str) -> AsyncIterator[Upstream]:
    """An aiohttp app with our paywall on GET /paid, settled by its own facilitator on ``chain``."""
    pay_to = chain.payee()

    async def paid(request: web.Request) -> web.Response:
        return web.json_response({"paid": True, "path": request.path})

    async def paid_nul(request: web.Request) -> web.Response:
        return web.Response(text="a\x00b", content_type="text/plain")  # valid UTF-8 that Postgres text refuses

    offer = offer_on(chain, pay_to, PRICE, max_timeout_seconds=120)
    handlers = {
        "/paid": paid,
        "/paid-nul": paid_nul,
        "/signin": paid,
        "/always402": _challenge(replace(offer, max_timeout_seconds=60)),
        "/upto": _challenge(replace(offer, scheme="upto", max_timeout_seconds=60)),
        "/free": _free,
    }
    paid_routes = {("GET", "/paid"): offer, ("GET", "/paid-nul"): offer}
    # /signin: the same offer, and a payer who paid it signs in instead of paying again (Sign-In-With-X)
    server = await paywalled(
        chain, database_url, handlers, paid_routes, middlewares=(_timed,), siwx_routes={("GET", "/signin"): offer}
    )
    base = str(server.make_url("")).rstrip("/")
    try:
        yield Upstream(base, pay_to, PRICE, base)
    finally:
        await server.close()


MASTER_KEY = secrets.token_hex(32)


async def wallet_settings(chain: PayChain, database_url: str, **kw: Any) -> Settings:
    """Settings of the wallet service: ``chain``, a master key, loopback upstreams allowed."""
    kw.setdefault("master_key", MASTER_KEY)
    kw.setdefault("allow_private_outbound", True)
    return await chain.settings(database_url, **kw)


FAST = WalletOptions(sweep_interval=0.5)
#: Webhooks retry within a test's time: dead-lettered after 3 quick failures (the 24 h window shortened to 0).
FAST_HOOKS = DeliveryOptions(backoff_base=0.05, backoff_cap=0.2, min_attempts=3, retry_window=0, interval=0.05)

ServiceFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


#: The operator token of keys-on services; the wallet scope set of the tenant key the tests act with.
ADMIN = "wallet-tests-operator-token-0123456789"
TENANT_SCOPES = ["verify", "settle", "wallets", "registry", "admin"]


@pytest.fixture(params=["keys-off", "keys-on"])
async def wallet_service(
    request: pytest.FixtureRequest, chain: PayChain, database_url: str, aiohttp_client: Any
) -> ServiceFactory:
    """Build and serve a wallet service app (settings overrides as keywords).

    Every wallet test runs twice: API keys off (anonymous wallets), and API keys on with one real tenant key that
    the client sends by default (the same tenant for every service the test builds on its database). A test module
    whose tests make their own tenants and keys overrides this fixture with ``service_factory(..., keys_on=False)``.
    """
    return service_factory(chain, database_url, aiohttp_client, keys_on=request.param == "keys-on")


def service_factory(chain: PayChain, database_url: str, aiohttp_client: Any, *, keys_on: bool) -> ServiceFactory:
    """The factory behind ``wallet_service``."""
    tenant_key: list[str] = []

    async def make(**kw: Any) -> TestClient[Any, Any]:
        options = kw.pop("options", FAST)
        if keys_on:
            kw.setdefault("require_api_keys", True)
            kw.setdefault("admin_token", ADMIN)
        app = chain.app(
            await wallet_settings(chain, database_url, **kw),
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
    client: TestClient[Any, Any], chain: PayChain, policy: dict[str, Any] | None = None, fund: int = 10**9, **kw: Any
) -> dict[str, Any]:
    """Create a wallet on ``chain`` with ``policy`` and fund it with ``fund`` of the chain's asset."""
    body = {"name": "agent", "chains": [chain.kind], "policy": policy or {}, **kw}
    r = await client.post("/v1/wallets", json=body)
    assert r.status == 201, await r.text()
    wallet: dict[str, Any] = await r.json()
    if fund:
        await chain.fund(wallet["addresses"][chain.kind], fund)
    return wallet


async def pay(
    client: TestClient[Any, Any], wallet_id: str, url: str, *, headers: dict[str, str] | None = None, **body: Any
) -> tuple[int, dict[str, Any]]:
    """POST /v1/wallets/{id}/pay; (status, JSON)."""
    r = await client.post(f"/v1/wallets/{wallet_id}/pay", json={"url": url, **body}, headers=headers or {})
    return r.status, json.loads(await r.read())
