"""Agent pay end to end on anvil: a paywalled upstream, one wallet, the ledger, receipts and on-chain transfers."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from tests.harness.paychain import PayChain
from tests.wallets.conftest import PRICE, Upstream, new_wallet, pay


async def test_pay_once_returns_upstream_receipt_and_budget(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 3)})
    before = await chain.balance(upstream.pay_to)
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert status == 200, doc
    assert doc["upstream"]["status"] == 200
    assert '"paid":true' in doc["upstream"]["body"].replace(" ", "")
    assert doc["payment"]["paid"] is True
    assert doc["payment"]["receipt"]["success"] is True
    assert doc["payment"]["transaction"].startswith("0x")
    assert doc["budget"]["total"]["remaining"] == str(PRICE * 2)
    assert await chain.balance(upstream.pay_to) == before + PRICE
    r = await service.get(f"/v1/wallets/{wallet['id']}/balance")
    balances = (await r.json())["balances"]
    assert balances[0]["balance"] == str(10**9 - PRICE)
    r = await service.get(f"/v1/wallets/{wallet['id']}/payments")
    [row] = (await r.json())["payments"]
    assert row["status"] == "committed"
    # a free URL is fetched and answered without paying
    status, doc = await pay(service, wallet["id"], upstream.base_url + "/free")
    assert status == 200
    assert doc["payment"] == {"paid": False}


async def test_200_concurrent_pays_spend_exactly_the_budget(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 10)})
    before = await chain.balance(upstream.pay_to)
    results = await asyncio.gather(*(pay(service, wallet["id"], upstream.paid_url) for _ in range(200)))
    codes = [doc.get("code") if status != 200 else "paid" for status, doc in results]
    assert codes.count("paid") == 10, codes
    assert codes.count("budget_exceeded") == 190, codes
    assert await chain.balance(upstream.pay_to) == before + 10 * PRICE
    r = await service.get(f"/v1/wallets/{wallet['id']}/budget")
    budget = await r.json()
    assert budget["spent"] == str(10 * PRICE)
    assert budget["total"]["remaining"] == "0"


async def test_idempotency_key_never_pays_twice(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 5)})
    before = await chain.balance(upstream.pay_to)
    h = {"Idempotency-Key": "agent-call-1"}
    first = await pay(service, wallet["id"], upstream.paid_url, headers=h)
    second = await pay(service, wallet["id"], upstream.paid_url, headers=h)
    assert first[0] == 200, (first, second)
    assert second[0] == 200, (first, second)
    assert first[1]["payment"]["paymentId"] == second[1]["payment"]["paymentId"]
    assert await chain.balance(upstream.pay_to) == before + PRICE
    r = await service.get(f"/v1/wallets/{wallet['id']}/payments")
    assert len((await r.json())["payments"]) == 1


async def test_outbound_guard_refuses_loopback(wallet_service: Any, upstream: Upstream, chain: PayChain) -> None:
    client = await wallet_service(allow_private_outbound=False)
    wallet = await new_wallet(client, chain, fund=0)
    status, doc = await pay(client, wallet["id"], upstream.paid_url)
    assert status == 400, doc
    assert doc["code"] == "outbound_refused", doc
    status, doc = await pay(client, wallet["id"], "file:///etc/passwd")
    assert status == 400, doc
    assert doc["code"] == "outbound_refused", doc


async def test_malformed_url_is_400_even_on_a_paused_wallet(wallet_service: Any, chain: PayChain) -> None:
    """The documented URL shape is checked before the wallet's state: a malformed request is 400, never 423."""
    client = await wallet_service()
    wallet = await new_wallet(client, chain, fund=0)
    assert (await client.post(f"/v1/wallets/{wallet['id']}/pause", json={})).status == 200
    for url in ("\U0002bf5a", "http://0", "https://a..b/", "http://user:pw@example.com/"):
        status, doc = await pay(client, wallet["id"], url)
        assert (status, doc["code"]) == (400, "outbound_refused"), (url, doc)
    status, doc = await pay(client, wallet["id"], "https://api.example.com/paid")
    assert (status, doc["code"]) == (423, "wallet_paused"), doc
