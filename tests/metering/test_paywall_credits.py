"""Paywalled routes charged in credits, over real Postgres with API keys required: credits-only and
credits-then-x402 (the fallback paid on the fake chain), exactly-once burns, refunds on handler failure, 200
concurrent requests against an exact balance, meter pricing with its usage event, and the remote ledger with a
second tenant's key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from chains import fake
from chains.evm.payer import EvmSigner
from chains.fake import FakePayer
from tests.harness.evm import new_key as new_evm_key
from tests.harness.paychain import FakeChain, offer_on
from tests.platform.conftest import ADMIN, bearer, new_key, new_tenant
from x402.client import PaymentPolicy, X402Client
from x402.client.siwx import sign_in_header
from x402.facilitator.remote import RemoteFacilitator
from x402.paywall import (
    CHARGE,
    CREDITS_CHARGED,
    CREDITS_REMAINING,
    CreditConfig,
    CreditPrice,
    MemorySiwxStore,
    PaidRoute,
    Paywall,
    SiwxConfig,
    first_customer,
    header_customer,
    siwx_customer,
)
from x402.paywall import siwx as siwx_lib
from x402.paywall.credits_remote import RemoteCredits
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.metering.paywall import AppCredits
from x402.wire import siwx as siwx_wire
from x402.wire.codec import PAYMENT_REQUIRED, PAYMENT_RESPONSE, decode_payment_required

AMOUNT = 10_000
#: The provider's own customer keys (what a provider's customer table would hold).
CUSTOMERS = {"ck_alice": "alice", "ck_bob": "bob", "ck_carol": "carol", "ck_dave": "dave"}


async def lookup(key: str) -> str | None:
    return CUSTOMERS.get(key)


def as_(customer: str, **more: str) -> dict[str, str]:
    key = next(k for k, v in CUSTOMERS.items() if v == customer)
    return {"X-Customer-Key": key, **more}


@dataclass
class World:
    client: TestClient[Any, Any]
    chain: FakeChain
    credits: AppCredits
    tenant: str
    admin: dict[str, str]
    pay_to: str
    served: dict[str, int]

    async def grant(self, customer: str, credits: int) -> None:
        r = await self.client.post(
            f"/v1/credits/{customer}/entries", json={"kind": "grant", "credits": credits}, headers=self.admin
        )
        assert r.status == 201, await r.text()

    async def balance(self, customer: str) -> int | None:
        r = await self.client.get(f"/v1/credits/{customer}", headers=self.admin)
        if r.status == 404:
            return None
        return int((await r.json())["balance"])

    async def kinds(self, customer: str) -> list[str]:
        hist = await (await self.client.get(f"/v1/credits/{customer}/history", headers=self.admin)).json()
        return [e["kind"] for e in reversed(hist["entries"])]


def handlers(served: dict[str, int]) -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    async def ok(request: web.Request) -> web.Response:
        served[request.path] = served.get(request.path, 0) + 1
        charge = request.get(CHARGE)
        return web.json_response({"ok": True, "customer": charge.customer if charge else None})

    async def fails(request: web.Request) -> web.Response:
        served[request.path] = served.get(request.path, 0) + 1
        return web.json_response({"error": "upstream broke"}, status=500)

    async def raises(request: web.Request) -> web.Response:
        raise RuntimeError("handler crashed")

    return {"/report": ok, "/fails": fails, "/raises": raises, "/search": ok, "/tokens": ok}


@pytest.fixture
async def world(database_url: str, redis_url: str, aiohttp_client: Any) -> World:
    chain = FakeChain()
    pay_to = chain.payee()
    pack = {"credits": 100, "amount": 5_000, "network": fake.NETWORK, "asset": fake.ASSET, "payTo": pay_to}
    settings = await chain.settings(
        database_url, require_api_keys=True, admin_token=ADMIN, redis_url=redis_url, credit_pack=pack
    )
    app = chain.app(settings)
    served: dict[str, int] = {}
    for path, handler in handlers(served).items():
        app.router.add_get(path, handler)
    only = CreditPrice(credits=3, mode="credits")
    credits = AppCredits(app)
    routes = {
        ("GET", "/report"): PaidRoute((), credits=only),
        ("GET", "/fails"): PaidRoute((), credits=only),
        ("GET", "/raises"): PaidRoute((), credits=only),
        ("GET", "/search"): PaidRoute((offer_on(chain, pay_to, AMOUNT),), credits=CreditPrice(credits=2)),
        ("GET", "/tokens"): PaidRoute((), credits=CreditPrice(meter="tokens", units=1500, mode="credits")),
    }
    Paywall(
        AppFacilitator(app), routes=routes, credits=CreditConfig(credits, header_customer(lookup)), register=False
    ).setup(app)
    client = await aiohttp_client(app)
    tenant = await new_tenant(client, "credit-provider")
    credits.tenant_id = uuid.UUID(tenant)  # the provider's tenant (known once the platform made it)
    admin = bearer((await new_key(client, tenant, ["admin"]))["key"])
    return World(client, chain, credits, tenant, admin, pay_to, served)


async def test_credits_only_route_burns_exactly_and_refuses_with_the_top_up_link(world: World) -> None:
    await world.grant("alice", 10)
    r = await world.client.get("/report", headers=as_("alice"))
    assert r.status == 200, await r.text()
    assert (await r.json())["customer"] == "alice"
    assert (r.headers[CREDITS_REMAINING], r.headers[CREDITS_CHARGED]) == ("7", "3")
    assert await world.balance("alice") == 7

    # the same request again under its Idempotency-Key: served, not charged twice
    for _ in range(2):
        r = await world.client.get("/report", headers=as_("alice", **{"Idempotency-Key": "req-42"}))
        assert r.status == 200
    assert await world.balance("alice") == 4
    assert await world.kinds("alice") == ["grant", "burn", "burn"]

    # no credential: 401; an unknown one likewise; a bad Idempotency-Key: 400
    r = await world.client.get("/report")
    assert (r.status, (await r.json())["code"]) == (401, "customer_credential_required")
    assert (await world.client.get("/report", headers={"X-Customer-Key": "ck_nobody"})).status == 401
    r = await world.client.get("/report", headers=as_("alice", **{"Idempotency-Key": "bad key"}))
    assert (r.status, (await r.json())["code"]) == (400, "invalid_idempotency_key")

    # a customer without credits: a 402 problem (not an x402 challenge) naming where to top up
    r = await world.client.get("/report", headers=as_("bob"))
    assert r.status == 402
    assert PAYMENT_REQUIRED not in r.headers
    problem = await r.json()
    assert (problem["code"], problem["balance"], problem["needed"]) == ("insufficient_credits", 0, 3)
    top_up = problem["topUpUrl"]
    assert top_up.endswith(f"/v1/credits/bob/topup?tenant={world.tenant}")
    assert r.headers["Link"] == f'<{top_up}>; rel="payment"'
    # ... and the link is the live top-up route: it answers the credit pack's 402
    pack = await world.client.post(top_up[top_up.index("/v1/") :])
    assert pack.status == 402
    assert decode_payment_required(pack.headers[PAYMENT_REQUIRED]).accepts[0].amount == "5000"
    assert await world.balance("bob") is None  # the refused burn left nothing behind
    assert world.served.get("/report") == 3


async def test_handler_failure_refunds_the_burn(world: World) -> None:
    await world.grant("alice", 10)
    r = await world.client.get("/fails", headers=as_("alice", **{"Idempotency-Key": "retry-me"}))
    assert r.status == 500
    assert (r.headers[CREDITS_REMAINING], r.headers[CREDITS_CHARGED]) == ("10", "0")
    assert await world.balance("alice") == 10
    r = await world.client.get("/raises", headers=as_("alice"))
    assert r.status == 500
    assert await world.balance("alice") == 10
    # a retry of the refunded request burns (and, failing again, refunds) again under the same key
    r = await world.client.get("/fails", headers=as_("alice", **{"Idempotency-Key": "retry-me"}))
    assert r.status == 500
    assert await world.balance("alice") == 10
    assert await world.kinds("alice") == ["grant", *["burn", "burn_refund"] * 3]
    assert world.served["/fails"] == 2


async def test_credits_then_x402_burns_when_covered_and_else_takes_a_payment(world: World) -> None:
    await world.grant("alice", 2)
    r = await world.client.get("/search", headers=as_("alice"))
    assert r.status == 200
    assert PAYMENT_RESPONSE not in r.headers  # no payment taken
    assert r.headers[CREDITS_REMAINING] == "0"
    assert await world.chain.balance(world.pay_to) == 0

    # out of credits (or no credential at all): the route's normal x402 challenge
    for headers in (as_("alice"), as_("bob"), {}):
        r = await world.client.get("/search", headers=headers)
        assert r.status == 402
        assert decode_payment_required(r.headers[PAYMENT_REQUIRED]).accepts[0].amount == str(AMOUNT)

    payer = FakePayer()
    await world.chain.fund(payer.address, 1_000_000)
    async with aiohttp.ClientSession() as http:
        client = X402Client(http, [payer], PaymentPolicy(allowed_assets=[fake.ASSET]))
        paid = await client.get(str(world.client.make_url("/search")), headers=as_("bob"))
    assert paid.status == 200, paid.text()
    assert paid.settlement is not None
    assert paid.settlement.success
    assert CREDITS_REMAINING not in paid.headers
    assert await world.chain.balance(world.pay_to) == AMOUNT
    assert await world.balance("bob") is None
    assert await world.balance("alice") == 0
    assert world.served["/search"] == 2


async def test_two_hundred_concurrent_requests_against_a_balance_for_exactly_n(world: World) -> None:
    n = 37
    await world.grant("carol", 2 * n)
    results = await asyncio.gather(*(world.client.get("/search", headers=as_("carol")) for _ in range(200)))
    from_credits = [r for r in results if r.status == 200]
    challenged = [r for r in results if r.status == 402 and PAYMENT_REQUIRED in r.headers]
    assert len(from_credits) == n
    assert len(challenged) == 200 - n
    assert all(PAYMENT_RESPONSE not in r.headers for r in from_credits)
    assert sorted(int(r.headers[CREDITS_REMAINING]) for r in from_credits) == list(range(0, 2 * n, 2))
    assert await world.balance("carol") == 0
    assert world.served["/search"] == n


async def test_meter_priced_route_burns_at_the_plan_rate_and_records_usage(world: World, database_url: str) -> None:
    h = world.admin
    assert (await world.client.put("/v1/meters/tokens", json={"aggregation": "sum"}, headers=h)).status == 200
    r = await world.client.put(
        "/v1/plans/pro",
        json={"limits": {"tokens": 10_000}, "burnRates": {"tokens": {"credits": 1, "per": 1000}}},
        headers=h,
    )
    assert r.status == 200, await r.text()
    assert (await world.client.put("/v1/customers/dave", json={"plan": "pro"}, headers=h)).status == 200
    await world.grant("dave", 5)
    r = await world.client.get("/tokens", headers=as_("dave"))
    assert r.status == 200
    assert (r.headers[CREDITS_CHARGED], r.headers[CREDITS_REMAINING]) == ("2", "3")  # 1,500 units at 1/1,000
    ent = await (await world.client.get("/v1/entitlements/dave", headers=h)).json()
    (tokens,) = [m for m in ent["meters"] if m["meter"] == "tokens"]
    assert tokens["used"] == 1500
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, value FROM usage_events WHERE customer = 'dave'")
    finally:
        await conn.close()
    assert [(row["id"].startswith("credits:req:"), row["value"]) for row in rows] == [(True, 1500)]


async def test_remote_ledger_with_the_provider_key_and_a_second_tenant(world: World, aiohttp_client: Any) -> None:
    await world.grant("alice", 10)
    service = str(world.client.make_url("/")).rstrip("/")
    a_key = (await new_key(world.client, world.tenant, ["verify"]))["key"]
    other = await new_tenant(world.client, "someone-else")
    b_key = (await new_key(world.client, other, ["verify"]))["key"]

    async def provider(key: str) -> tuple[TestClient[Any, Any], RemoteCredits]:
        app = web.Application()
        served: dict[str, int] = {}
        hs = handlers(served)
        app.router.add_get("/report", hs["/report"])
        app.router.add_get("/fails", hs["/fails"])
        ledger = RemoteCredits(service, key, tenant_id=world.tenant)
        only = PaidRoute((), credits=CreditPrice(credits=3, mode="credits"))
        Paywall(
            RemoteFacilitator(service),
            routes={("GET", "/report"): only, ("GET", "/fails"): only},
            credits=CreditConfig(ledger, header_customer(lookup)),
            register=False,
        ).setup(app)
        return await aiohttp_client(app), ledger

    a, a_ledger = await provider(a_key)
    b, b_ledger = await provider(b_key)
    try:
        r = await a.get("/report", headers=as_("alice", **{"Idempotency-Key": "k1"}))
        assert r.status == 200, await r.text()
        assert r.headers[CREDITS_REMAINING] == "7"
        r = await a.get("/fails", headers=as_("alice"))
        assert (r.status, r.headers[CREDITS_REMAINING]) == (500, "7")  # refunded over HTTP
        assert await world.balance("alice") == 7

        # tenant B's provider key: B's own (empty) alice, never A's credits
        r = await b.get("/report", headers=as_("alice"))
        assert (r.status, (await r.json())["code"]) == (402, "insufficient_credits")
        hb = bearer(b_key)
        assert (await world.client.get("/v1/credits/alice", headers=hb)).status == 404
        assert (await world.client.get("/v1/credits/alice/history", headers=hb)).status == 404
        hist = await (await world.client.get("/v1/credits/alice/history", headers=world.admin)).json()
        ref = next(e["reference"] for e in hist["entries"] if e["kind"] == "burn")
        r = await world.client.post(f"/v1/credits/alice/charges/{ref}/refund", headers=hb)
        assert (r.status, (await r.json())["code"]) == (404, "charge_not_found")
        r = await world.client.post("/v1/credits/alice/charges", json={"key": ref, "credits": 1}, headers=hb)
        assert (r.status, (await r.json())["code"]) == (409, "insufficient_credits")
        assert await world.balance("alice") == 7
    finally:
        await a_ledger.close()
        await b_ledger.close()


async def test_a_signed_in_address_is_the_customer(world: World, aiohttp_client: Any) -> None:
    config = SiwxConfig(MemorySiwxStore(), chains=["eip155:8453"])
    app = web.Application()
    app.router.add_get("/report", handlers({})["/report"])
    resolver = first_customer(header_customer(lookup), siwx_customer(config))
    only = PaidRoute((), credits=CreditPrice(credits=3, mode="credits"))
    Paywall(
        RemoteFacilitator(str(world.client.make_url("")).rstrip("/")),
        routes={("GET", "/report"): only},
        credits=CreditConfig(AppCredits(world.client.app, tenant_id=world.credits.tenant_id), resolver),
        register=False,
    ).setup(app)
    provider = await aiohttp_client(app)
    signer = EvmSigner(new_evm_key())
    address = signer.address.lower()
    await world.grant(address, 10)

    def signed() -> str:
        declaration = siwx_lib.challenge(config, str(provider.make_url("/report")), config.chains)
        header = sign_in_header({siwx_wire.KEY: declaration}, [signer])
        assert header is not None
        return header[0]

    one = signed()
    r = await provider.get("/report", headers={siwx_wire.HEADER: one})
    assert r.status == 200, await r.text()
    assert (await r.json())["customer"] == address
    assert r.headers[CREDITS_REMAINING] == "7"
    # a sign-in message is good once; a forged or unreadable one names nobody
    assert (await provider.get("/report", headers={siwx_wire.HEADER: one})).status == 401
    forged = siwx_wire.decode_header(signed())
    forged.address = EvmSigner(new_evm_key()).address  # signed by another key
    assert (await provider.get("/report", headers={siwx_wire.HEADER: siwx_wire.encode_header(forged)})).status == 401
    assert (await provider.get("/report", headers={siwx_wire.HEADER: "not-base64"})).status == 401
    # the customer key still works beside it
    r = await provider.get("/report", headers={siwx_wire.HEADER: signed(), **as_("alice")})
    assert r.status == 402  # alice (named first) has no credits here
    assert await world.balance(address) == 7
