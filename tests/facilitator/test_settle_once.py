"""/settle answers success once per payment; explicit retries (Idempotency-Key) and retries after pending complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from x402.service.app import create_app
from x402.service.appkeys import RECONCILER


@pytest.fixture
async def manual_chain() -> AsyncIterator[DevChain]:
    """A private anvil whose blocks are mined only when the test says so (transactions stay pending)."""
    async with evm.own_devchain() as chain:
        yield chain


async def _client(aiohttp_client: Any, chain: DevChain, database_url: str, **kw: Any) -> tuple[Any, str, Any]:
    key, signer = await evm.funded_signer(chain)
    app = create_app(evm.chain_settings(chain, database_url, key, **kw))
    return await aiohttp_client(app), signer, app


async def _unmined(aiohttp_client: Any, chain: DevChain, database_url: str, amount: int) -> tuple[Any, str, Any, Any]:
    """A facilitator that answers pending after 0.5 s, and a payment of ``amount``, with the chain's mining off."""
    client, signer, app = await _client(aiohttp_client, chain, database_url, settle_timeout=0.5)
    payment = await evm.new_payment(chain, amount)
    await evm.rpc(chain.rpc_url, "evm_setAutomine", False)
    return client, signer, app, payment


async def _delivered(database_url: str) -> list[tuple[str, bool]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, success_delivered FROM settlements ORDER BY id")
    finally:
        await conn.close()
    return [(r["status"], r["success_delivered"]) for r in rows]


async def test_concurrent_identical_settles_one_success(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, signer, _ = await _client(aiohttp_client, devchain, database_url)
    payment = await evm.new_payment(devchain, 31)
    pay_to = payment.requirements.pay_to
    before = await evm.tx_count(devchain, signer)
    responses = await asyncio.gather(*(client.post("/settle", json=payment.body()) for _ in range(12)))
    results = [await r.json() for r in responses]
    wins = [r for r in results if r["success"]]
    assert len(wins) == 1, results
    losers = [r for r in results if not r["success"]]
    assert {r["errorReason"] for r in losers} == {"duplicate_settlement"}
    assert {r["transaction"] for r in losers} == {wins[0]["transaction"]}
    assert await evm.tx_count(devchain, signer) == before + 1
    assert await evm.token_balance(devchain, pay_to) == 31
    assert await _delivered(database_url) == [("confirmed", True)]


async def test_idempotency_key_replays_the_original_success(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, signer, _ = await _client(aiohttp_client, devchain, database_url)
    payment = await evm.new_payment(devchain, 77)
    pay_to = payment.requirements.pay_to
    headers = {"Idempotency-Key": "settle-retry-1"}
    r = await client.post("/settle", json=payment.body(), headers=headers)
    first = await r.json()
    assert first["success"] is True, first
    sent = await evm.tx_count(devchain, signer)
    for _ in range(2):  # the explicit retry: the original success, replayed
        r = await client.post("/settle", json=payment.body(), headers=headers)
        again = await r.json()
        assert r.headers.get("Idempotent-Replayed") == "true"
        assert again == first
    # a plain re-send of the same payment: no second success
    r = await client.post("/settle", json=payment.body())
    plain = await r.json()
    assert (plain["success"], plain["errorReason"], plain["transaction"]) == (
        False,
        "duplicate_settlement",
        first["transaction"],
    )
    assert await evm.tx_count(devchain, signer) == sent
    assert await evm.token_balance(devchain, pay_to) == 77


async def test_retry_after_pending_completes_once(
    database_url: str, aiohttp_client: Any, manual_chain: DevChain
) -> None:
    chain = manual_chain
    client, signer, _, payment = await _unmined(aiohttp_client, chain, database_url, 555)
    pay_to = payment.requirements.pay_to
    r = await client.post("/settle", json=payment.body())
    pending = await r.json()
    assert (pending["success"], pending["errorReason"]) == (False, "settlement_pending"), pending
    tx = pending["transaction"]
    assert tx.startswith("0x")
    # still unmined: the retry answers pending again, with the same transaction
    r = await client.post("/settle", json=payment.body())
    again = await r.json()
    assert (again["success"], again["errorReason"], again["transaction"]) == (False, "settlement_pending", tx)
    await evm.rpc(chain.rpc_url, "evm_mine")
    # the first settle to see the confirmation answers success; the next ones are duplicates
    r = await client.post("/settle", json=payment.body())
    done = await r.json()
    assert (done["success"], done["transaction"]) == (True, tx), done
    r = await client.post("/settle", json=payment.body())
    dup = await r.json()
    assert (dup["success"], dup["errorReason"], dup["transaction"]) == (False, "duplicate_settlement", tx)
    assert await evm.tx_count(chain, signer) == 1
    assert await evm.token_balance(chain, pay_to) == 555
    assert await _delivered(database_url) == [("confirmed", True)]


async def test_pending_then_reconciled_then_idempotent_retry(
    database_url: str, aiohttp_client: Any, manual_chain: DevChain
) -> None:
    chain = manual_chain
    client, signer, app, payment = await _unmined(aiohttp_client, chain, database_url, 808)
    pay_to = payment.requirements.pay_to
    headers = {"Idempotency-Key": "pending-then-done"}
    r = await client.post("/settle", json=payment.body(), headers=headers)
    pending = await r.json()
    assert pending["errorReason"] == "settlement_pending", pending
    await evm.rpc(chain.rpc_url, "evm_mine")
    # the reconciler confirms it: nobody has been answered success yet
    done = await app[RECONCILER].run_once(claim_grace=0)
    assert done == {"confirmed": 1}
    assert await _delivered(database_url) == [("confirmed", False)]
    # the same Idempotency-Key was not pinned to the pending answer: the retry completes with success
    r = await client.post("/settle", json=payment.body(), headers=headers)
    out = await r.json()
    assert (out["success"], out["transaction"]) == (True, pending["transaction"]), out
    r = await client.post("/settle", json=payment.body(), headers=headers)
    assert await r.json() == out
    r = await client.post("/settle", json=payment.body())
    assert (await r.json())["errorReason"] == "duplicate_settlement"
    assert await evm.tx_count(chain, signer) == 1
    assert await evm.token_balance(chain, pay_to) == 808
