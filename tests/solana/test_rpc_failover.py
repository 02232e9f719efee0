"""The Solana RPC pool: a dead first URL fails over, its circuit breaker opens, later calls skip it (LiteSVM)."""

from __future__ import annotations

import asyncio

import pytest
from solana.rpc.async_api import AsyncClient

from chains.config import NetworkConfig
from chains.solana.adapter import SolanaAdapter
from chains.solana.payer import create_payment
from chains.solana.rpc import SolanaRpcPool
from tests.harness.deadrpc import dead_rpc
from tests.solana.conftest import NETWORK, PRICE, World
from x402.errors import ChainUnavailable


async def _slot(c: AsyncClient) -> int:
    return (await c.get_slot()).value


@pytest.mark.parametrize("mode", ["drop", "502"])
async def test_dead_first_url_fails_over_and_its_breaker_opens(world: World, mode: str) -> None:
    w = world
    async with dead_rpc(w.rpc.url, mode) as dead:
        adapter = SolanaAdapter(
            [NetworkConfig(network=NETWORK, rpc_urls=(dead.url, w.rpc.url))], [w.fee_payer], poll_interval=0.02
        )
        try:
            pool = adapter.pool(NETWORK)
            for i in range(3):  # each verify simulates once: the dead URL is tried first, the live one answers
                payload = await create_payment(w.rpc.url, w.payer, w.requirements())
                outcome = await adapter.verify(w.ctx(payload))
                assert outcome.is_valid, outcome
                assert dead.hits >= i + 1  # (solana-py's HTTP client retries a dropped connection once)
            assert pool.breaker_state() == ["open", "closed"]
            seen = dead.hits
            before = w.rpc.token_balance(w.ata(w.pay_to.pubkey()))
            ctx = w.ctx(payload)
            prepared = await adapter.prepare_settlement(ctx)
            await adapter.broadcast(NETWORK, prepared)
            conf = await adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=5.0)
            assert conf.status == "confirmed"
            assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == before + PRICE  # landed via the live URL
            assert dead.hits == seen  # open: simulate, send and status polls all skipped it
        finally:
            await adapter.close()


async def test_breaker_half_open_trial_recovers(world: World) -> None:
    async with dead_rpc(world.rpc.url, "502") as dead:
        pool = SolanaRpcPool(NETWORK, [dead.url, world.rpc.url], 5.0, breaker_cooldown=0.2)
        try:
            for _ in range(3):
                await pool.call(_slot)
            assert pool.breaker_state() == ["open", "closed"]
            await pool.call(_slot)
            assert dead.hits == 3
            await asyncio.sleep(0.25)
            assert pool.breaker_state()[0] == "half-open"
            await pool.call(_slot)  # the trial fails: open again, answered by the second URL
            assert dead.hits == 4
            assert pool.breaker_state()[0] == "open"
            dead.dead = False
            await asyncio.sleep(0.25)
            await pool.call(_slot)  # the trial succeeds (forwarded to LiteSVM): closed
            assert dead.hits == 5
            assert pool.breaker_state() == ["closed", "closed"]
        finally:
            await pool.close()


async def test_every_url_dead_is_chain_unavailable_then_breakers_open(world: World) -> None:
    async with dead_rpc(world.rpc.url) as a, dead_rpc(world.rpc.url, "502") as b:
        adapter = SolanaAdapter([NetworkConfig(network=NETWORK, rpc_urls=(a.url, b.url))], [world.fee_payer])
        try:
            payload = await create_payment(world.rpc.url, world.payer, world.requirements())
            for _ in range(3):
                with pytest.raises(ChainUnavailable) as info:
                    await adapter.verify(world.ctx(payload))
                assert info.value.status == 503
                assert NETWORK in str(info.value.detail)
            hits = (a.hits, b.hits)
            with pytest.raises(ChainUnavailable, match="all circuit breakers open"):
                await adapter.verify(world.ctx(payload))
            assert (a.hits, b.hits) == hits  # nobody was asked
            assert await adapter.check_health() == {NETWORK: False}
        finally:
            await adapter.close()
