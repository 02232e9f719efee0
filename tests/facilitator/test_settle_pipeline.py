"""Pipelined settlement on one signer (real anvil + Postgres): many settlements in flight, exactly once, no nonce gap.

The lane lock covers only taking a nonce, signing the drafted transaction and journalling it; the gas estimate,
fees and funds check run before it, broadcasts and receipt waits after it, concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.rpcproxy import rpc_proxy
from x402.service.app import create_app
from x402.service.appkeys import FACILITATOR, RECONCILER
from x402.service.facilitator.reconciler import Reconciler


@pytest.fixture
async def own_chain() -> AsyncIterator[DevChain]:
    """A private anvil: these tests count a fresh signer's transactions and make the node refuse one."""
    async with evm.own_devchain() as chain:
        yield chain


async def _rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch("SELECT * FROM settlements ORDER BY id"))
    finally:
        await conn.close()


async def _fills(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM nonce_fills"))
    finally:
        await conn.close()


async def test_fifty_concurrent_settles_on_one_signer_take_consecutive_nonces(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    chain = own_chain
    client, signer = await evm.facilitator_client(aiohttp_client, chain, database_url)
    payer_key, req = await evm.payer_and_offer(chain, 7)
    payments = [evm.sign_payment(chain, payer_key, req) for _ in range(50)]
    answers = await asyncio.gather(*(client.post("/settle", json=p.body()) for p in payments))
    results = [await a.json() for a in answers]
    assert all(r["success"] for r in results), [r for r in results if not r["success"]][:3]
    rows = await _rows(database_url)
    assert len(rows) == 50
    assert {r["status"] for r in rows} == {"confirmed"}
    assert sorted(r["signer_nonce"] for r in rows) == list(range(50))  # consecutive: no gap, no collision
    assert {r["tx_id"] for r in rows} == {r["transaction"] for r in results}
    assert await evm.tx_count(chain, signer) == 50
    assert await evm.token_balance(chain, req.pay_to) == 50 * 7
    assert await _fills(database_url) == 0


async def test_same_payload_settled_concurrently_ten_times_settles_once(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    chain = own_chain
    client, signer = await evm.facilitator_client(aiohttp_client, chain, database_url)
    payment = await evm.new_payment(chain, 13)
    others = [await evm.new_payment(chain, 1) for _ in range(5)]  # other settlements in the same pipeline
    answers = await asyncio.gather(
        *(client.post("/settle", json=payment.body()) for _ in range(10)),
        *(client.post("/settle", json=p.body()) for p in others),
    )
    results = [await a.json() for a in answers]
    same, rest = results[:10], results[10:]
    assert sum(1 for r in same if r["success"]) == 1, same
    assert {r["errorReason"] for r in same if not r["success"]} <= {"duplicate_settlement", "settlement_pending"}
    assert all(r["success"] for r in rest), rest
    assert len({r["transaction"] for r in same if r["transaction"]}) == 1  # every answer names the one transaction
    assert await evm.token_balance(chain, payment.requirements.pay_to) == 13
    assert await evm.tx_count(chain, signer) == 6
    rows = await _rows(database_url)
    assert sorted(r["signer_nonce"] for r in rows) == list(range(6))


async def test_node_refusing_one_broadcast_mid_pipeline_leaves_no_gap(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    """The 4th of 10 concurrent broadcasts is refused: the ones behind it wait at the node, the journalled
    transaction is sent again (by a later settlement of the lane or the reconciler), every payment is paid once."""
    chain = own_chain
    key, signer = await evm.funded_signer(chain)
    async with rpc_proxy(chain.rpc_url, set(), refuse={"eth_sendRawTransaction": {4}}) as proxy:
        settings = evm.chain_settings(
            chain, database_url, key, networks=(evm.dev_network(chain, (proxy.url,)),), settle_timeout=3
        )
        client = await aiohttp_client(create_app(settings))
        payer_key, req = await evm.payer_and_offer(chain, 3)
        payments = [evm.sign_payment(chain, payer_key, req) for _ in range(10)]
        answers = await asyncio.gather(*(client.post("/settle", json=p.body()) for p in payments))
        results = [await a.json() for a in answers]
        assert len(proxy.refused_calls) == 1
        assert any(r.get("errorReason") == "settlement_pending" for r in results), results
        assert all(r["success"] or r["errorReason"] == "settlement_pending" for r in results), results
        reconciler: Reconciler = client.server.app[RECONCILER]
        deadline = time.monotonic() + 60
        while any(r["status"] != "confirmed" for r in await _rows(database_url)):
            assert time.monotonic() < deadline, [dict(r) for r in await _rows(database_url)]
            await asyncio.sleep(0.5)
            await reconciler.run_once()
    rows = await _rows(database_url)
    assert len(rows) == 10
    assert sorted(r["signer_nonce"] for r in rows) == list(range(10))  # the refused nonce was sent again, not skipped
    assert await evm.tx_count(chain, signer) == 10
    assert await evm.token_balance(chain, req.pay_to) == 10 * 3
    assert await _fills(database_url) == 0


async def test_lane_lock_is_not_held_across_the_gas_estimate(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    """A slow eth_estimateGas (1 s) does not lengthen the signer lane's critical section: it runs before it."""
    chain = own_chain
    key, signer = await evm.funded_signer(chain)
    async with rpc_proxy(chain.rpc_url, set(), delay={"eth_estimateGas": 1.0}) as proxy:
        settings = evm.chain_settings(chain, database_url, key, networks=(evm.dev_network(chain, (proxy.url,)),))
        client = await aiohttp_client(create_app(settings))
        journal = client.server.app[FACILITATOR].journal
        holds: list[float] = []
        slot = journal.signer_slot

        @contextlib.asynccontextmanager
        async def timed_slot(network: str, who: str, **kw: Any) -> AsyncIterator[Any]:
            async with slot(network, who, **kw) as conn:
                started = time.monotonic()
                yield conn
                holds.append(time.monotonic() - started)

        journal.signer_slot = timed_slot
        payer_key, req = await evm.payer_and_offer(chain, 2)
        for _ in range(3):
            payment = evm.sign_payment(chain, payer_key, req)
            assert (await (await client.post("/settle", json=payment.body())).json())["success"] is True
    assert len(holds) == 3
    assert max(holds) < 1.0, holds  # the estimate's second is spent outside the lock
    assert await evm.tx_count(chain, signer) == 3
