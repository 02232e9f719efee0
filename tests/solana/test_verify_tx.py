"""Verify plain Solana token transfers by transaction signature (getSignatureStatuses + getTransaction)."""

from __future__ import annotations

from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction_status import TransactionConfirmationStatus

from chains.base import TxCheck
from chains.solana.adapter import TRANSACTION_NOT_FOUND
from chains.solana.payer import transfer_checked_ix
from tests.solana.conftest import NETWORK, PRICE, World
from x402.wire import reasons as R


def pay(w: World, dest_owner: Pubkey, amount: int = PRICE) -> str:
    """A plain TransferChecked from the payer to ``dest_owner``'s ATA; returns the signature."""
    ix = transfer_checked_ix(w.program, w.ata(w.payer.pubkey()), w.mint, w.ata(dest_owner), w.payer.pubkey(), amount, 6)
    before = set(w.rpc.records)
    w.rpc.run([ix], [w.payer])
    (sig,) = set(w.rpc.records) - before
    return str(sig)


def check(w: World, tx_id: str, **changes: Any) -> TxCheck:
    base: dict[str, Any] = {
        "network": NETWORK,
        "tx_id": tx_id,
        "pay_to": str(w.pay_to.pubkey()),
        "asset": str(w.mint),
        "min_amount": PRICE,
    }
    base.update(changes)
    return TxCheck(**base)


async def test_verified_transfer(world: World) -> None:
    sig = pay(world, world.pay_to.pubkey(), PRICE * 2)
    out = await world.adapter.verify_transaction(check(world, sig))
    assert out.status == "verified", out
    assert out.amount == PRICE * 2
    assert out.payer == str(world.payer.pubkey())
    assert out.confirmations >= 1
    assert out.block is not None


async def test_token_2022_transfer_verified(world2022: World) -> None:
    sig = pay(world2022, world2022.pay_to.pubkey())
    assert (await world2022.adapter.verify_transaction(check(world2022, sig))).status == "verified"


async def test_wrong_destination(world: World) -> None:
    stranger = Keypair().pubkey()
    world.rpc.create_ata(stranger, world.mint, world.program)
    sig = pay(world, stranger)
    out = await world.adapter.verify_transaction(check(world, sig))
    assert out.status == "invalid"
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH


async def test_too_little(world: World) -> None:
    sig = pay(world, world.pay_to.pubkey(), PRICE - 1)
    out = await world.adapter.verify_transaction(check(world, sig))
    assert out.status == "invalid"
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH
    assert out.amount == PRICE - 1


async def test_other_mint(world: World) -> None:
    sig = pay(world, world.pay_to.pubkey())
    other = world.rpc.create_mint(world.mint_authority)
    out = await world.adapter.verify_transaction(check(world, sig, asset=str(other)))
    assert out.status == "invalid"
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH


async def test_unknown_signature(world: World) -> None:
    out = await world.adapter.verify_transaction(check(world, "1" * 64))
    assert out.status == "invalid"
    assert out.reason == TRANSACTION_NOT_FOUND
    out = await world.adapter.verify_transaction(check(world, "not-a-signature"))
    assert out.reason == TRANSACTION_NOT_FOUND


async def test_pending_until_enough_confirmations(world: World) -> None:
    sig = pay(world, world.pay_to.pubkey())
    world.rpc.confirmation_status = TransactionConfirmationStatus.Processed
    assert (await world.adapter.verify_transaction(check(world, sig))).status == "pending"
    world.rpc.confirmation_status = TransactionConfirmationStatus.Confirmed  # the shim reports 0 confirmations
    assert (await world.adapter.verify_transaction(check(world, sig, confirmations=3))).status == "pending"
    world.rpc.confirmation_status = TransactionConfirmationStatus.Finalized
    assert (await world.adapter.verify_transaction(check(world, sig, confirmations=3))).status == "verified"
