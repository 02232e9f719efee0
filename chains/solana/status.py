"""Solana payment lookups: did a payer's transaction land, and what a confirmed transaction moved (verify-tx)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from chains.base import PaymentStatus, TxCheck, TxVerification
from chains.solana.payer import TOKEN_PROGRAMS
from chains.solana.rpc import SolanaRpcPool
from chains.solana.verify import Decoded, decode_transaction
from x402.wire import reasons as R

FINALIZED_CONFIRMATIONS: Final = 32
TRANSACTION_NOT_FOUND: Final = "transaction_not_found"
#: SPL token account layout: mint (32 bytes), owner (32), amount (u64 little-endian).
TOKEN_AMOUNT_OFFSET: Final = 64
DONE: Final = (TransactionConfirmationStatus.Confirmed, TransactionConfirmationStatus.Finalized)


async def payment_status(pool: SolanaRpcPool, payload: Mapping[str, Any]) -> PaymentStatus:
    """settled when a confirmed transaction carries our message; void when none did and its blockhash expired.

    The payer does not know the fee payer's signature (the transaction id), so the payer's recent signatures
    are searched for a landed transaction with the same message (which the payer's own signature pins).
    """
    try:
        dec = decode_transaction(payload)
    except ValueError as exc:
        return PaymentStatus("void", message=f"unreadable transaction: {exc}")
    signers = dec.keys[: dec.tx.message.header.num_required_signatures]
    found = await _landed(pool, dec, signers[1:] or signers)
    if found is not None:
        return found
    if await pool.blockhash_valid(dec.tx.message.recent_blockhash):
        return PaymentStatus("pending", message="not landed; its blockhash is still valid")
    # it may have landed just before the blockhash expired: look once more before calling it void
    found = await _landed(pool, dec, signers[1:] or signers)
    if found is not None:
        return found
    return PaymentStatus("void", message="not landed and its blockhash expired")


async def _landed(pool: SolanaRpcPool, dec: Decoded, payers: Sequence[Pubkey]) -> PaymentStatus | None:
    for payer in payers:

        async def recent(c: AsyncClient, who: Pubkey = payer) -> Any:
            return await c.get_signatures_for_address(who, limit=100, commitment=Confirmed)

        try:
            entries = (await pool.call(recent)).value
        except RPCException:
            continue
        for entry in entries:

            async def fetch(c: AsyncClient, sig: Signature = entry.signature) -> Any:
                return await c.get_transaction(
                    sig, encoding="base64", commitment=Confirmed, max_supported_transaction_version=0
                )

            try:
                got = (await pool.call(fetch)).value
            except RPCException:
                continue
            tx = getattr(getattr(got, "transaction", None), "transaction", None)
            if not isinstance(tx, VersionedTransaction) or to_bytes_versioned(tx.message) != dec.message_bytes:
                continue
            if entry.err is not None:
                return PaymentStatus("void", transaction=str(entry.signature), message=f"failed: {entry.err}")
            return PaymentStatus("settled", transaction=str(entry.signature))
    return None


async def verify_transaction(pool: SolanaRpcPool, check: TxCheck) -> TxVerification:
    """A confirmed transaction that moved >= ``min_amount`` of ``asset`` into ``pay_to``'s token account."""
    try:
        sig = Signature.from_string(check.tx_id)
    except ValueError:
        return TxVerification("invalid", reason=TRANSACTION_NOT_FOUND)
    st = await pool.signature_status(sig)
    if st is None:
        return TxVerification("invalid", reason=TRANSACTION_NOT_FOUND)
    if st.err is not None:
        return TxVerification("invalid", reason=R.INVALID_EXACT_SVM_TRANSACTION_FAILED, block=st.slot)
    confirmations = FINALIZED_CONFIRMATIONS if st.confirmations is None else int(st.confirmations)
    if st.confirmation_status == TransactionConfirmationStatus.Finalized:
        confirmations = max(confirmations, FINALIZED_CONFIRMATIONS)
    elif st.confirmation_status == TransactionConfirmationStatus.Confirmed:
        confirmations = max(confirmations, 1)  # optimistically confirmed: at least the block that holds it
    if st.confirmation_status not in DONE:
        return TxVerification("pending", confirmations=confirmations, block=st.slot)
    got = await pool.transaction(sig)
    if got is None:
        return TxVerification("pending", confirmations=confirmations, block=st.slot)
    moved = received(got, check.asset, check.pay_to)
    if moved.received == 0:
        reason = (
            R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH
            if moved.any_in
            else R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH
        )
        return TxVerification("invalid", payer=moved.payer, reason=reason, block=st.slot, confirmations=confirmations)
    if moved.received < check.min_amount:
        return TxVerification(
            "invalid",
            amount=moved.received,
            payer=moved.payer,
            reason=R.INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH,
            confirmations=confirmations,
            block=st.slot,
        )
    if confirmations < check.confirmations:
        return TxVerification("pending", moved.received, moved.payer, confirmations, block=st.slot)
    return TxVerification("verified", moved.received, moved.payer, confirmations, block=st.slot)


async def balance_of(pool: SolanaRpcPool, asset: str, owner: str) -> int:
    """The amount in ``owner``'s associated token account for the mint ``asset`` (0 when it has none)."""
    mint, holder = Pubkey.from_string(asset), Pubkey.from_string(owner)

    async def account(c: AsyncClient, key: Pubkey) -> Any:
        return (await c.get_account_info(key)).value

    mint_acc = await pool.call(lambda c: account(c, mint))
    if mint_acc is None or mint_acc.owner not in TOKEN_PROGRAMS:
        return 0
    ata = get_associated_token_address(holder, mint, mint_acc.owner)
    acc = await pool.call(lambda c: account(c, ata))
    if acc is None or acc.owner != mint_acc.owner:
        return 0
    return int.from_bytes(bytes(acc.data)[TOKEN_AMOUNT_OFFSET : TOKEN_AMOUNT_OFFSET + 8], "little")


@dataclass(frozen=True, slots=True)
class Moved:
    """What a transaction moved of one mint: into ``pay_to``, any inflow at all, and the biggest sender."""

    received: int
    payer: str | None
    any_in: bool


def received(got: Any, asset: str, pay_to: str, keys: list[Pubkey] | None = None) -> Moved:
    """Token balance deltas of ``asset`` in a getTransaction answer: what ``pay_to`` received, and from whom.

    ``keys``: the transaction's account keys when the caller has them (version-1 transactions: solders cannot
    expose the encoded transaction of the answer).
    """
    meta = got.transaction.meta
    if meta is None:
        return Moved(0, None, False)
    keys = keys if keys is not None else account_keys(got)
    try:
        owner = Pubkey.from_string(pay_to)
        mint = Pubkey.from_string(asset)
    except ValueError:
        return Moved(0, None, False)
    atas = {get_associated_token_address(owner, mint, p) for p in TOKEN_PROGRAMS}
    pre: dict[int, tuple[int, Any]] = {}
    post: dict[int, tuple[int, Any]] = {}
    for src, dst in ((meta.pre_token_balances, pre), (meta.post_token_balances, post)):
        for b in src or []:
            if str(b.mint) == asset:
                dst[b.account_index] = (int(b.ui_token_amount.amount), b.owner)
    received, any_in, payer, biggest_out = 0, False, None, 0
    for idx in set(pre) | set(post):
        before = pre.get(idx, (0, None))[0]
        after, acct_owner = post.get(idx, (0, pre.get(idx, (0, None))[1]))
        delta = after - before
        key = keys[idx] if idx < len(keys) else None
        if delta > 0:
            any_in = True
            if key in atas or acct_owner == owner:
                received += delta
        elif delta < 0 and -delta > biggest_out:
            biggest_out, payer = -delta, (str(acct_owner) if acct_owner is not None else None)
    return Moved(received, payer, any_in)


def account_keys(got: Any) -> list[Pubkey]:
    """Static account keys plus loaded (lookup-table) addresses, in the order token balances index them."""
    tx = got.transaction.transaction
    keys: list[Pubkey] = []
    if isinstance(tx, VersionedTransaction):
        keys = list(tx.message.account_keys)
    else:
        keys = [
            k if isinstance(k, Pubkey) else Pubkey.from_string(str(getattr(k, "pubkey", k)))
            for k in tx.message.account_keys
        ]
    loaded = got.transaction.meta.loaded_addresses if got.transaction.meta is not None else None
    if loaded is not None:
        keys += list(loaded.writable) + list(loaded.readonly)
    return keys
