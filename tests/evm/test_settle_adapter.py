"""EvmAdapter settlement on anvil: prepare/broadcast/confirm, idempotent broadcast, failures, 100 concurrent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from chains.base import PaymentContext, SettlementRejected
from chains.evm.adapter import EvmAdapter
from chains.evm.devchain import DevChain
from tests.evm.test_verify import ctx_of
from tests.harness.evm import (
    address_of,
    dev_network,
    fund_eth,
    funded_payer,
    new_key,
    requirements,
    rpc,
    sign_payment,
    token_balance,
)
from x402.errors import ConfigError
from x402.wire import reasons


@pytest.fixture
async def settler(devchain: DevChain) -> AsyncIterator[EvmAdapter]:
    """An adapter whose facilitator signer is a fresh key with ETH (never dev account 0)."""
    key = new_key()
    await fund_eth(devchain, address_of(key))
    adapter = EvmAdapter([dev_network(devchain)], signer_key=key)
    yield adapter
    await adapter.close()


async def test_happy_path_moves_balances(devchain: DevChain, settler: EvmAdapter) -> None:
    payer = await funded_payer(devchain, 1_000_000)
    pay_to = address_of(new_key())
    ctx = ctx_of(sign_payment(devchain, payer, requirements(devchain, pay_to, amount=250_000)))
    assert (await settler.verify(ctx, simulate=False)).is_valid
    prepared = await settler.prepare_settlement(ctx)
    assert prepared.signer == settler.signer_address
    assert prepared.tx_id.startswith("0x")
    assert len(prepared.tx_id) == 66
    await settler.broadcast(devchain.network, prepared)
    conf = await settler.confirm(ctx, devchain.network, prepared.tx_id, timeout=10)
    assert conf.status == "confirmed", conf
    assert conf.amount == 250_000
    assert conf.block is not None
    assert await token_balance(devchain, pay_to) == 250_000
    assert await token_balance(devchain, address_of(payer)) == 750_000
    # Broadcasting the same signed transaction again (reconciler re-send) is harmless.
    await settler.broadcast(devchain.network, prepared)
    assert (await settler.confirm(ctx, devchain.network, prepared.tx_id, timeout=0)).status == "confirmed"
    assert await token_balance(devchain, pay_to) == 250_000


async def test_confirm_unknown_hash(devchain: DevChain, settler: EvmAdapter) -> None:
    ghost = "0x" + "ab" * 32
    assert (await settler.confirm(None, devchain.network, ghost, timeout=0)).status == "unknown"
    assert (await settler.confirm(None, devchain.network, ghost, timeout=0.3)).status == "unknown"


async def test_reverted_transaction_is_failed(devchain: DevChain, settler: EvmAdapter) -> None:
    payer = await funded_payer(devchain)
    ctx = ctx_of(sign_payment(devchain, payer, requirements(devchain, address_of(new_key()))))
    # Two settlements of one authorization, both prepared before either lands: the second must revert on chain.
    first = await settler.prepare_settlement(ctx)
    second = await settler.prepare_settlement(ctx, nonce_floor=(first.signer_nonce or 0) + 1)
    await settler.broadcast(devchain.network, first)
    await settler.broadcast(devchain.network, second)
    assert (await settler.confirm(ctx, devchain.network, first.tx_id, timeout=10)).status == "confirmed"
    conf = await settler.confirm(ctx, devchain.network, second.tx_id, timeout=10)
    assert conf.status == "failed"
    assert conf.reason == reasons.INVALID_EXACT_EVM_TRANSACTION_FAILED
    # Preparing it once more is refused up front, with the diagnosed reason.
    with pytest.raises(SettlementRejected) as info:
        await settler.prepare_settlement(ctx)
    assert info.value.reason == reasons.INVALID_EXACT_EVM_NONCE_ALREADY_USED


async def test_transfer_event_mismatch(devchain: DevChain, settler: EvmAdapter) -> None:
    payer = await funded_payer(devchain)
    req = requirements(devchain, address_of(new_key()))
    ctx = ctx_of(sign_payment(devchain, payer, req))
    prepared = await settler.prepare_settlement(ctx)
    await settler.broadcast(devchain.network, prepared)
    assert (await settler.confirm(ctx, devchain.network, prepared.tx_id, timeout=10)).status == "confirmed"
    other = ctx_of(sign_payment(devchain, payer, req, value=int(req.amount)))  # another authorization
    other_req = replace(other, requirements=req)
    conf = await settler.confirm(other_req, devchain.network, prepared.tx_id, timeout=0)
    assert conf.status == "confirmed"  # same from/to/value: the Transfer event matches
    other_to = ctx_of(sign_payment(devchain, payer, requirements(devchain, address_of(new_key()))))
    conf = await settler.confirm(other_to, devchain.network, prepared.tx_id, timeout=0)
    assert conf.status == "failed"
    assert conf.reason == reasons.INVALID_EXACT_EVM_TRANSFER_EVENT_MISMATCH


async def test_no_signer_cannot_prepare(devchain: DevChain) -> None:
    adapter = EvmAdapter([dev_network(devchain)], signer_key=None)
    try:
        payer = await funded_payer(devchain)
        ctx = ctx_of(sign_payment(devchain, payer, requirements(devchain, address_of(new_key()))))
        assert (await adapter.verify(ctx)).is_valid
        with pytest.raises(ConfigError):
            await adapter.prepare_settlement(ctx)
    finally:
        await adapter.close()


async def test_nonce_floor_is_respected(devchain: DevChain, settler: EvmAdapter) -> None:
    payer = await funded_payer(devchain)
    ctx = ctx_of(sign_payment(devchain, payer, requirements(devchain, address_of(new_key()))))
    assert (await settler.prepare_settlement(ctx, nonce_floor=41)).signer_nonce == 41
    assert (await settler.prepare_settlement(ctx)).signer_nonce == 0


async def test_hundred_concurrent_settlements(devchain: DevChain, settler: EvmAdapter) -> None:
    n = 100
    payers = [await funded_payer(devchain, 10_000_000) for _ in range(4)]
    pay_to = address_of(new_key())
    req = requirements(devchain, pay_to, amount=1_000)
    ctxs = [ctx_of(sign_payment(devchain, payers[i % 4], req)) for i in range(n)]
    lock = asyncio.Lock()
    next_nonce: list[int | None] = [None]

    async def settle_one(ctx: PaymentContext) -> str:
        async with lock:  # the lead's journal does this across processes; a lock is enough in one test
            prepared = await settler.prepare_settlement(ctx, nonce_floor=next_nonce[0])
            next_nonce[0] = (prepared.signer_nonce or 0) + 1
        await settler.broadcast(devchain.network, prepared)
        conf = await settler.confirm(ctx, devchain.network, prepared.tx_id, timeout=30)
        return conf.status

    started = time.perf_counter()
    statuses = await asyncio.gather(*(settle_one(c) for c in ctxs))
    elapsed = time.perf_counter() - started
    assert statuses == ["confirmed"] * n
    assert await token_balance(devchain, pay_to) == n * 1_000
    count = await rpc(devchain.rpc_url, "eth_getTransactionCount", settler.signer_address, "latest")
    assert int(count, 16) == n
    print(f"\n{n} concurrent settlements: {elapsed:.2f} s")


async def test_waiting_settlements_share_one_receipt_watcher(devchain: DevChain, settler: EvmAdapter) -> None:
    """Blocks seconds apart: the settlements waiting for receipts cost one head poll per tick between them, and one
    batched receipt sweep when a block lands, not one receipt poll loop each."""
    n = 20
    payer = await funded_payer(devchain, 10_000_000)
    pay_to = address_of(new_key())
    req = requirements(devchain, pay_to, amount=1_000)
    ctxs = [ctx_of(sign_payment(devchain, payer, req)) for _ in range(n)]
    network = devchain.network
    await rpc(devchain.rpc_url, "evm_setAutomine", False)
    try:
        nonce: int | None = None
        prepared = []
        for ctx in ctxs:
            p = await settler.prepare_settlement(ctx, nonce_floor=nonce)
            nonce = (p.signer_nonce or 0) + 1
            prepared.append(p)
        await asyncio.gather(*(settler.broadcast(network, p) for p in prepared))
        pool = settler.settler.pools[network]
        waits = [
            asyncio.ensure_future(settler.confirm(ctx, network, p.tx_id, timeout=30))
            for ctx, p in zip(ctxs, prepared, strict=True)
        ]
        await asyncio.sleep(1.0)  # every settlement waits: no block yet
        assert not any(w.done() for w in waits)
        before = pool.calls
        await asyncio.sleep(1.0)
        # one eth_blockNumber per 50 ms tick for all 20 (a per-transaction loop polling every 0.25 s makes 80)
        assert pool.calls - before <= 1.0 / 0.05 + 2
        await rpc(devchain.rpc_url, "evm_mine")
        confs = await asyncio.wait_for(asyncio.gather(*waits), 10)
    finally:
        await rpc(devchain.rpc_url, "evm_setAutomine", True)
    assert [c.status for c in confs] == ["confirmed"] * n
    assert all(c.amount == 1_000 for c in confs)
    assert await token_balance(devchain, pay_to) == n * 1_000
    assert settler.settler._watchers[network].waiting == 0
