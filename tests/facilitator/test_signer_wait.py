"""A settlement waits at most X402_SIGNER_WAIT for its signer's lane, then answers 503 signer_busy, nothing sent.

Without the bound, settlements beyond what one signer can take queue without limit: callers time out while their
settlements still wait (the soak benchmark showed the asyncio task count climbing and every settle timing out).
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from x402.errors import SignerBusy
from x402.service.app import create_app
from x402.service.appkeys import FACILITATOR
from x402.service.facilitator.journal import Journal

NETWORK = "eip155:31337"
SIGNER = "0x00000000000000000000000000000000000000a1"


async def test_bounded_wait_on_a_lane_held_in_this_process(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        journal = Journal(pool)
        async with journal.signer_slot(NETWORK, SIGNER):
            started = time.monotonic()
            with pytest.raises(SignerBusy) as err:
                async with journal.signer_slot(NETWORK, SIGNER, wait=0.3):
                    raise AssertionError("the lane is held: no second holder")
            assert 0.25 <= time.monotonic() - started < 3
            assert err.value.status == 503
            assert err.value.code == "signer_busy"
            assert err.value.dependency == f"signer:{NETWORK}"
            # another signer's lane is free
            async with journal.signer_slot(NETWORK, "0x00000000000000000000000000000000000000a2", wait=0.3):
                pass
        async with journal.signer_slot(NETWORK, SIGNER, wait=0.3):  # released: granted at once
            pass
    finally:
        await pool.close()


async def test_bounded_wait_on_a_lane_held_by_another_process(database_url: str) -> None:
    """Another replica holds the lane (its advisory lock): the bound applies to that wait too."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    other_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        mine, other = Journal(pool), Journal(other_pool)  # separate in-process locks, like two processes
        async with other.signer_slot(NETWORK, SIGNER):
            started = time.monotonic()
            with pytest.raises(SignerBusy):
                async with mine.signer_slot(NETWORK, SIGNER, wait=0.3):
                    raise AssertionError("the lane is held by the other process")
            assert 0.2 <= time.monotonic() - started < 3
        async with mine.signer_slot(NETWORK, SIGNER, wait=0.3) as conn:
            # the bound is lifted for the lane's own statements
            assert await conn.fetchval("SHOW lock_timeout") == "0"
    finally:
        await pool.close()
        await other_pool.close()


@pytest.mark.slow
async def test_settle_answers_signer_busy_and_the_same_payment_settles_once_the_lane_frees(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    key, signer = await evm.funded_signer(devchain)
    app = create_app(evm.chain_settings(devchain, database_url, key, signer_wait=0.3))
    client = await aiohttp_client(app)
    payment = await evm.new_payment(devchain, 41)
    journal = app[FACILITATOR].journal
    before = await evm.tx_count(devchain, signer)
    async with journal.signer_slot(devchain.network, signer):  # the signer is saturated
        r = await client.post("/settle", json=payment.body())
        doc = await r.json()
    assert r.status == 503, doc
    assert doc["code"] == "signer_busy"
    assert await evm.tx_count(devchain, signer) == before  # nothing signed or sent
    assert await evm.token_balance(devchain, payment.requirements.pay_to) == 0
    # nothing was sent, so the claim was dropped: the same payment, presented again once the lane is free, settles
    # (a 503 means "retry"), and exactly once
    r = await client.post("/settle", json=payment.body())
    doc = await r.json()
    assert doc["success"] is True, doc
    assert await evm.token_balance(devchain, payment.requirements.pay_to) == 41
    r = await client.post("/settle", json=payment.body())
    again = await r.json()
    assert again["success"] is False, again
    assert again["errorReason"] == "duplicate_settlement", again
    assert await evm.token_balance(devchain, payment.requirements.pay_to) == 41
