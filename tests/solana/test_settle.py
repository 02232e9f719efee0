"""Settle exact SVM payments: co-sign, broadcast, confirm; re-broadcast, failures, expiry and RPC failover."""

from __future__ import annotations

import base64

import pytest
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from chains.base import Confirmation, PaymentContext, PreparedSettlement, SettlementRejected
from chains.solana.adapter import SolanaAdapter
from chains.solana.payer import create_payment, encode_payload, payment_instructions, sign_partially
from tests.harness.services import free_port
from tests.solana.conftest import NETWORK, PRICE, START_BALANCE, World
from x402.errors import ChainRejected, ChainUnavailable
from x402.settings import NetworkConfig
from x402.wire import reasons as R


async def settle(
    w: World, payload: dict[str, str], timeout: float = 5.0
) -> tuple[PaymentContext, PreparedSettlement, Confirmation]:
    ctx = w.ctx(payload)
    verified = await w.adapter.verify(ctx, simulate=False)
    assert verified.is_valid, verified
    prepared = await w.adapter.prepare_settlement(ctx)
    await w.adapter.broadcast(NETWORK, prepared)
    return ctx, prepared, await w.adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=timeout)


async def test_settle_moves_the_money(world: World) -> None:
    w = world
    payload = await create_payment(w.rpc.url, w.payer, w.requirements())
    fee_payer_sol = w.rpc.svm.get_balance(w.fee_payer.pubkey())
    assert fee_payer_sol is not None
    _, prepared, conf = await settle(w, payload)
    assert conf.status == "confirmed", conf
    assert conf.amount == PRICE
    assert conf.block is not None
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    assert w.rpc.token_balance(w.ata(w.payer.pubkey())) == START_BALANCE - PRICE
    fee_payer_after = w.rpc.svm.get_balance(w.fee_payer.pubkey())
    assert fee_payer_after is not None
    assert fee_payer_after < fee_payer_sol  # the fee payer paid the fee
    tx = VersionedTransaction.from_bytes(prepared.raw)
    assert str(tx.signatures[0]) == prepared.tx_id
    assert prepared.signer == str(w.fee_payer.pubkey())
    assert prepared.valid_until is not None


async def test_token_2022_settles(world2022: World) -> None:
    w = world2022
    payload = await create_payment(w.rpc.url, w.payer, w.requirements())
    _, _, conf = await settle(w, payload)
    assert conf.status == "confirmed", conf
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE


async def test_rebroadcast_is_harmless(world: World) -> None:
    w = world
    payload = await create_payment(w.rpc.url, w.payer, w.requirements())
    ctx, prepared, conf = await settle(w, payload)
    assert conf.status == "confirmed"
    await w.adapter.broadcast(NETWORK, prepared)  # AlreadyProcessed -> fine
    again = await w.adapter.prepare_settlement(ctx)
    assert again.tx_id == prepared.tx_id  # deterministic: the same payment is the same transaction
    await w.adapter.broadcast(NETWORK, again)
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE


async def test_replay_key_is_per_transaction(world: World) -> None:
    w = world
    p1 = await create_payment(w.rpc.url, w.payer, w.requirements())
    p2 = await create_payment(w.rpc.url, w.payer, w.requirements())
    k1, k1b, k2 = (w.adapter.replay_key(w.ctx(p)) for p in (p1, p1, p2))
    assert k1 == k1b
    assert k1.nonce != k2.nonce  # the random memo makes identical payments distinct
    assert k1.payer == str(w.payer.pubkey())
    assert k1.asset == str(w.mint)
    assert k1.network == NETWORK


async def test_confirm_unknown_then_rebroadcast(world: World) -> None:
    w = world
    payload = await create_payment(w.rpc.url, w.payer, w.requirements())
    ctx = w.ctx(payload)
    prepared = await w.adapter.prepare_settlement(ctx)
    w.rpc.drop_sends = True  # the RPC accepts it but it never lands
    await w.adapter.broadcast(NETWORK, prepared)
    conf = await w.adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=0)
    assert conf.status == "unknown"
    w.rpc.drop_sends = False
    await w.adapter.broadcast(NETWORK, prepared)  # the reconciler re-sends the stored raw transaction
    assert (await w.adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=1)).status == "confirmed"


async def test_confirm_expired_blockhash_is_failed(world: World) -> None:
    w = world
    payload = await create_payment(w.rpc.url, w.payer, w.requirements())
    ctx = w.ctx(payload)
    prepared = await w.adapter.prepare_settlement(ctx)
    w.rpc.svm.expire_blockhash()
    with pytest.raises(ChainRejected):
        await w.adapter.broadcast(NETWORK, prepared)
    conf = await w.adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=0)
    assert conf.status == "failed"
    assert conf.reason == R.INVALID_EXACT_SVM_TRANSACTION_FAILED
    assert (await w.adapter.confirm(None, NETWORK, prepared.tx_id, timeout=0)).status == "unknown"


async def test_confirm_pending_while_only_processed(world: World) -> None:
    w = world
    payload = await create_payment(w.rpc.url, w.payer, w.requirements())
    w.rpc.confirmation_status = TransactionConfirmationStatus.Processed
    ctx, prepared, conf = await settle(w, payload, timeout=0.05)
    assert conf.status == "pending"
    w.rpc.confirmation_status = TransactionConfirmationStatus.Confirmed
    assert (await w.adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=0)).status == "confirmed"


async def test_failed_on_chain_transaction(world: World) -> None:
    w = world
    reqs = w.requirements(amount=str(START_BALANCE + 1))  # more than the payer has: fails on chain
    ixs = payment_instructions(w.payer.pubkey(), reqs, token_program=w.program, decimals=6)
    tx = sign_partially(w.payer, w.fee_payer.pubkey(), ixs, w.rpc.svm.latest_blockhash())
    ctx = w.ctx(encode_payload(tx), reqs)
    with pytest.raises(SettlementRejected) as info:  # prepare simulates it
        await w.adapter.prepare_settlement(ctx)
    assert info.value.reason == R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED
    assert info.value.payer == str(w.payer.pubkey())
    sigs = list(tx.signatures)
    sigs[0] = w.fee_payer.sign_message(to_bytes_versioned(tx.message))  # co-signed without our checks
    tx.signatures = sigs
    prepared = PreparedSettlement(str(sigs[0]), bytes(tx), str(w.fee_payer.pubkey()))
    with pytest.raises(ChainRejected):  # preflight refuses it
        await w.adapter.broadcast(NETWORK, prepared)
    w.rpc.rpc_sendTransaction(base64.b64encode(prepared.raw).decode(), {"encoding": "base64", "skipPreflight": True})
    conf = await w.adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=0)
    assert conf.status == "failed"
    assert conf.reason == R.INVALID_EXACT_SVM_TRANSACTION_FAILED


async def test_rpc_failover_and_all_down(world: World) -> None:
    w = world
    dead = f"http://127.0.0.1:{free_port()}"
    adapter = SolanaAdapter([NetworkConfig(NETWORK, (dead, w.rpc.url))], [w.fee_payer], rpc_timeout=2.0)
    try:
        payload = await create_payment(w.rpc.url, w.payer, w.requirements())
        assert (await adapter.verify(w.ctx(payload))).is_valid
        assert await adapter.check_health() == {NETWORK: True}
    finally:
        await adapter.close()
    down = SolanaAdapter([NetworkConfig(NETWORK, (dead,))], [Keypair()], rpc_timeout=2.0)
    try:
        assert await down.check_health() == {NETWORK: False}
        with pytest.raises(ChainUnavailable):
            await down.confirm(None, NETWORK, "1" * 64, timeout=0)
    finally:
        await down.close()
