"""Issue 12 §3: a wallet never pays twice when the seller's answer is lost or wrong after the payment went out.

Each test has its own anvil (the expiry test moves the chain's clock) and a seller that really settles through the
project's facilitator and then fails (tests/harness/faults.py). Assertions are on-chain (Transfer events, balances)
and in Postgres (the facilitator's settlement rows, the wallet ledger).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chains.evm.devchain import DevChain
from tests.harness.evm import token_balance
from tests.harness.faults import (
    OFFER_SECONDS,
    PRICE,
    Seller,
    final_settlement_rows,
    private_devchain,
    settlement_rows,
    start_remote_seller,
    start_seller,
    transfers_to,
    warp,
)
from tests.harness.paychain import EvmChain
from tests.wallets.conftest import FAST, ServiceFactory, Upstream, new_wallet, pay
from tests.wallets.test_autopause_webhooks import _audit_actions
from wallets.service import WalletOptions
from x402.service.appkeys import WALLETS
from x402.service.storage.scope import system_scope

#: The wallet gives up on the seller after this long (the hanging seller answers much later or never).
FETCH_TIMEOUT = 3.0
OPTIONS = WalletOptions(fetch_timeout=FETCH_TIMEOUT, sweep_interval=FAST.sweep_interval, reconcile_interval=3600)


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """On anvil: these tests resolve sent payments against the real chain (receipts, warps, transfers)."""
    return EvmChain(devchain)


@pytest.fixture
def devchain() -> Iterator[DevChain]:
    """An anvil for this test alone: time warps must not leak into other tests."""
    with private_devchain() as chain:
        yield chain


@pytest.fixture
async def seller(devchain: DevChain, database_url: str) -> AsyncIterator[Seller]:
    """The faulty seller (mode set by each test)."""
    s = await start_seller(devchain, database_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def service(wallet_service: ServiceFactory) -> TestClient[Any, Any]:
    """The wallet service, with a short upstream timeout and the reconciler run by the tests."""
    return await wallet_service(options=OPTIONS)


async def _reconcile(service: TestClient[Any, Any]) -> Any:
    # one pass of the background reconciler, in the system scope the service starts it in
    with system_scope("test: the wallet reconciler's pass"):
        return await service.app[WALLETS].reconcile()


async def _budget(service: TestClient[Any, Any], wallet_id: str) -> dict[str, Any]:
    r = await service.get(f"/v1/wallets/{wallet_id}/budget")
    doc: dict[str, Any] = await r.json()
    return doc


async def _payments(service: TestClient[Any, Any], wallet_id: str) -> list[dict[str, Any]]:
    r = await service.get(f"/v1/wallets/{wallet_id}/payments")
    doc: dict[str, Any] = await r.json()
    return list(doc["payments"])


async def _until(check: Any, what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Receiver:
    """A webhook endpoint that records what it receives."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.server: TestServer | None = None

    async def start(self) -> str:
        async def hook(request: web.Request) -> web.Response:
            self.events.append(json.loads(await request.read()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/hook"))

    def resolved(self) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == "payment.resolved"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    yield r
    if r.server is not None:
        await r.server.close()


@pytest.mark.parametrize("mode", ["hang", "502", "402", "reset"])
async def test_settled_then_failed_is_paid_once(
    mode: str, service: TestClient[Any, Any], seller: Seller, devchain: DevChain, chain: EvmChain, database_url: str
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 5)})
    seller.faults.mode = mode
    key = {"Idempotency-Key": f"buy-{mode}"}
    status, doc = await pay(service, wallet["id"], seller.url, headers=key)
    # the seller settled before failing: the chain says so at once, and the wallet reports a payment, not an error
    assert status == 200, doc
    assert doc["payment"]["paid"] is True, doc
    assert doc["payment"]["status"] == "committed", doc
    assert doc["payment"]["transaction"].startswith("0x"), doc
    assert doc["payment"]["upstreamError"], doc
    first_id = doc["payment"]["paymentId"]
    for _ in range(3):  # retries with the same key: the original outcome, never a new signature
        status, again = await pay(service, wallet["id"], seller.url, headers=key)
        assert status == 200, again
        assert again["payment"]["paymentId"] == first_id
        assert again["payment"]["replayed"] is True
        assert again["payment"]["transaction"] == doc["payment"]["transaction"]
    assert len(seller.faults.signatures) == 1
    assert await transfers_to(devchain, seller.pay_to) == 1
    assert await token_balance(devchain, seller.pay_to) == PRICE
    assert await final_settlement_rows(database_url, seller.pay_to) == {"confirmed": 1}
    budget = await _budget(service, wallet["id"])
    assert (budget["spent"], budget["reserved"], budget["pending"]) == (str(PRICE), "0", "0"), budget
    assert budget["total"]["remaining"] == str(PRICE * 4)
    [row] = await _payments(service, wallet["id"])
    assert row["status"] == "committed"
    assert row["transaction"] == doc["payment"]["transaction"]


async def test_late_settlement_stays_pending_then_commits(
    service: TestClient[Any, Any],
    seller: Seller,
    devchain: DevChain,
    chain: EvmChain,
    database_url: str,
    receiver: Receiver,
) -> None:
    r = await service.post("/v1/webhooks", json={"url": await receiver.start(), "events": ["payment.resolved"]})
    assert r.status == 201
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 2), "dailyCap": str(PRICE)})
    seller.faults.mode = "late"  # the seller sits on the payment past the wallet's timeout, then settles
    key = {"Idempotency-Key": "late-1"}
    status, doc = await pay(service, wallet["id"], seller.url, headers=key)
    assert status == 202, doc
    assert doc["code"] == "payment_pending", doc
    payment = doc["payment"]
    assert payment["status"] == "pending", payment
    assert payment["payer"] == wallet["addresses"]["evm"], payment
    nonce = payment["authorization"]["nonce"]
    assert "signature" not in json.dumps(doc)
    # the hold stays and counts against every cap
    budget = await _budget(service, wallet["id"])
    assert (budget["spent"], budget["reserved"], budget["pending"]) == ("0", str(PRICE), str(PRICE)), budget
    assert budget["daily"]["remaining"] == "0", budget
    # the same key: the pending state, never a new signature; without a key: refused as the same purchase
    status, again = await pay(service, wallet["id"], seller.url, headers=key)
    assert (status, again["code"]) == (202, "payment_pending"), again
    assert again["payment"]["paymentId"] == payment["paymentId"]
    assert again["payment"]["authorization"]["nonce"] == nonce
    status, keyless = await pay(service, wallet["id"], seller.url)
    assert (status, keyless["code"]) == (409, "purchase_pending"), keyless
    # another purchase (a new key) is refused by the daily cap the pending payment holds
    status, other = await pay(service, wallet["id"], seller.url, headers={"Idempotency-Key": "late-2"})
    assert (status, other["code"]) == (403, "window_cap_exceeded"), other
    assert len(seller.faults.signatures) == 1
    [row] = await _payments(service, wallet["id"])
    assert row["status"] == "pending", row
    assert row["authorization"]["nonce"] == nonce, row
    # not settled yet and not expired: the reconciler leaves it pending
    done = await _reconcile(service)
    assert (done.committed, done.released, done.pending) == (0, 0, 1)
    # the seller settles late; the reconciler finds it on-chain
    seller.faults.release.set()

    async def settled() -> bool:
        return await transfers_to(devchain, seller.pay_to) == 1

    await _until(settled, "the late settlement")
    done = await _reconcile(service)
    assert (done.committed, done.released) == (1, 0)
    [row] = await _payments(service, wallet["id"])
    assert row["status"] == "committed", row
    assert row["transaction"].startswith("0x"), row
    assert "resolvedAt" in row, row
    status, final = await pay(service, wallet["id"], seller.url, headers=key)
    assert status == 200, final
    assert final["payment"]["paid"] is True, final
    assert final["payment"]["transaction"] == row["transaction"], final
    budget = await _budget(service, wallet["id"])
    assert (budget["spent"], budget["reserved"], budget["pending"]) == (str(PRICE), "0", "0"), budget
    assert await transfers_to(devchain, seller.pay_to) == 1
    assert await token_balance(devchain, wallet["addresses"]["evm"]) == 10**9 - PRICE
    assert await final_settlement_rows(database_url, seller.pay_to) == {"confirmed": 1}

    async def hooked() -> bool:
        return bool(receiver.resolved())

    await _until(hooked, "the payment.resolved webhook")
    [event] = receiver.resolved()
    assert event["resolution"] == "committed", event
    assert event["paymentId"] == payment["paymentId"], event
    assert event["transaction"] == row["transaction"]


async def test_unsettled_failure_is_released_only_after_expiry(
    service: TestClient[Any, Any],
    seller: Seller,
    devchain: DevChain,
    chain: EvmChain,
    database_url: str,
    receiver: Receiver,
) -> None:
    r = await service.post("/v1/webhooks", json={"url": await receiver.start(), "events": ["payment.resolved"]})
    assert r.status == 201
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 3)})
    seller.faults.mode = "nosettle_502"
    key = {"Idempotency-Key": "nosettle-1"}
    status, doc = await pay(service, wallet["id"], seller.url, headers=key)
    assert (status, doc["code"]) == (202, "payment_pending"), doc
    assert doc["upstream"]["status"] == 502
    done = await _reconcile(service)
    assert (done.committed, done.released, done.pending) == (0, 0, 1)
    assert (await _budget(service, wallet["id"]))["pending"] == str(PRICE)
    # the authorization expires in chain time: nothing can use it any more, so the hold is released
    await warp(devchain, OFFER_SECONDS + 30)
    done = await _reconcile(service)
    assert (done.committed, done.released) == (0, 1)
    budget = await _budget(service, wallet["id"])
    assert (budget["spent"], budget["reserved"], budget["pending"]) == ("0", "0", "0"), budget
    [row] = await _payments(service, wallet["id"])
    assert row["status"] == "released", row
    assert "expired" in row["reason"], row
    # the key keeps its outcome: never a new signature under it
    status, again = await pay(service, wallet["id"], seller.url, headers=key)
    assert (status, again["code"]) == (409, "payment_not_settled"), again
    assert len(seller.faults.signatures) == 1
    assert await transfers_to(devchain, seller.pay_to) == 0
    assert await token_balance(devchain, wallet["addresses"]["evm"]) == 10**9
    assert await settlement_rows(database_url, seller.pay_to) == {}

    async def hooked() -> bool:
        return bool(receiver.resolved())

    await _until(hooked, "the payment.resolved webhook")
    [event] = receiver.resolved()
    assert event["resolution"] == "released", event
    assert event["paymentId"] == doc["payment"]["paymentId"], event


async def test_slow_settle_within_timeout_pays_once(
    service: TestClient[Any, Any], seller: Seller, devchain: DevChain, chain: EvmChain, database_url: str
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 2)})
    seller.faults.mode = "slow"
    seller.faults.delay = 1.0
    status, doc = await pay(service, wallet["id"], seller.url, headers={"Idempotency-Key": "slow-1"})
    assert status == 200, doc
    assert doc["payment"]["receipt"]["success"] is True
    assert await transfers_to(devchain, seller.pay_to) == 1
    assert await final_settlement_rows(database_url, seller.pay_to) == {"confirmed": 1}
    budget = await _budget(service, wallet["id"])
    assert (budget["spent"], budget["reserved"], budget["pending"]) == (str(PRICE), "0", "0"), budget


async def test_background_reconciler_resolves_without_a_request(
    wallet_service: ServiceFactory, seller: Seller, devchain: DevChain, chain: EvmChain
) -> None:
    options = WalletOptions(fetch_timeout=FETCH_TIMEOUT, reconcile_interval=0.2)
    service = await wallet_service(options=options)
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE)})
    seller.faults.mode = "late"
    status, doc = await pay(service, wallet["id"], seller.url)
    assert (status, doc["code"]) == (202, "payment_pending"), doc
    seller.faults.release.set()

    async def committed() -> bool:
        status: str = (await _payments(service, wallet["id"]))[0]["status"]
        return status == "committed"

    await _until(committed, "the background reconciler")
    assert await transfers_to(devchain, seller.pay_to) == 1
    budget = await _budget(service, wallet["id"])
    assert (budget["spent"], budget["reserved"]) == (str(PRICE), "0"), budget


async def test_failure_streak_counts_payments_released_after_expiry(
    service: TestClient[Any, Any], upstream: Upstream, devchain: DevChain, chain: EvmChain, database_url: str
) -> None:
    wallet = await new_wallet(service, chain, {"autoPause": {"consecutiveFailures": 2}})
    for n in range(2):
        status, doc = await pay(service, wallet["id"], upstream.base_url + f"/always402?n={n}")
        assert (status, doc["code"]) == (202, "payment_pending"), doc
    r = await service.get(f"/v1/wallets/{wallet['id']}")
    state = await r.json()
    assert state["status"] == "active", state
    assert state["budget"]["pending"] == str(2 * PRICE), state
    await warp(devchain, 120)
    done = await _reconcile(service)
    assert done.released == 2
    r = await service.get(f"/v1/wallets/{wallet['id']}")
    state = await r.json()
    assert state["status"] == "paused", state
    assert state["pausedReason"].startswith("failures"), state
    assert state["budget"]["reserved"] == "0"  # the expired payments gave their holds back
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert doc["code"] == "wallet_paused"
    r = await service.post(f"/v1/wallets/{wallet['id']}/resume")
    assert (await r.json())["status"] == "active"
    actions = await _audit_actions(database_url, wallet["id"])
    assert actions == ["wallet.create", "wallet.pause", "wallet.resume"], actions


@pytest.mark.parametrize("mode", ["hang", "502"])
async def test_paywall_with_remote_facilitator_that_settles_then_fails(
    mode: str, service: TestClient[Any, Any], devchain: DevChain, chain: EvmChain, database_url: str
) -> None:
    remote = await start_remote_seller(devchain, database_url, settle_timeout=1.5)
    try:
        remote.faults.mode = mode
        wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 3)})
        key = {"Idempotency-Key": f"remote-{mode}"}
        status, doc = await pay(service, wallet["id"], remote.url, headers=key)
        # the provider's facilitator failed after settling: the wallet learns from the chain that it paid
        assert status == 200, doc
        assert doc["payment"]["status"] == "committed", doc
        assert doc["upstream"]["status"] in (502, 503), doc
        for _ in range(2):
            status, again = await pay(service, wallet["id"], remote.url, headers=key)
            assert status == 200, again
            assert again["payment"]["paymentId"] == doc["payment"]["paymentId"]
        assert len(remote.faults.signatures) == 1
        assert await transfers_to(devchain, remote.pay_to) == 1
        assert await final_settlement_rows(database_url, remote.pay_to) == {"confirmed": 1}
        budget = await _budget(service, wallet["id"])
        assert (budget["spent"], budget["reserved"], budget["pending"]) == (str(PRICE), "0", "0"), budget
    finally:
        await remote.close()
