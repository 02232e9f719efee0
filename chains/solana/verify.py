"""Solana ``exact`` verification: decode, the TS 2.27 checks in order (x402-spec §5.3), co-sign and simulate."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless

from chains.base import PaymentContext, VerifyOutcome
from chains.solana.payer import (
    COMPUTE_BUDGET_PROGRAM,
    LIGHTHOUSE_PROGRAM,
    MEMO_PROGRAM,
    TOKEN_PROGRAMS,
    TRANSFER_CHECKED,
)
from chains.solana.rpc import SolanaRpcPool, pool_for
from x402.errors import BadRequest, ChainRejected
from x402.settings import NetworkConfig
from x402.wire import reasons as R
from x402.wire.models import is_canonical_uint

#: x402-spec §5.3: SetComputeUnitPrice is capped at 5 lamports per compute unit.
MAX_COMPUTE_UNIT_PRICE: Final = 5_000_000  # micro-lamports
#: Our own cap on SetComputeUnitLimit (official clients ask for 20 000): bounds the fee we sponsor.
DEFAULT_MAX_COMPUTE_UNITS: Final = 200_000
DEFAULT_MAX_SIGNERS: Final = 4
MIN_INSTRUCTIONS: Final = 3
MAX_INSTRUCTIONS: Final = 7  # TS 2.27: limit, price, transfer + up to four Lighthouse/Memo

#: Legacy (x402@1.2.0) code, kept because the spec forbids the fee payer in any instruction's accounts.
FEE_PAYER_IN_ACCOUNTS: Final = "invalid_exact_svm_payload_transaction_fee_payer_included_in_instruction_accounts"
_UNKNOWN_NTH = {
    3: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FOURTH_INSTRUCTION,
    4: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FIFTH_INSTRUCTION,
    5: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SIXTH_INSTRUCTION,
    6: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SEVENTH_INSTRUCTION,
}


@dataclass(frozen=True, slots=True)
class Transfer:
    program: Pubkey
    source: Pubkey
    mint: Pubkey
    dest: Pubkey
    authority: Pubkey
    amount: int


@dataclass(frozen=True, slots=True)
class Decoded:
    tx: VersionedTransaction
    keys: list[Pubkey]
    message_bytes: bytes


class Invalid(Exception):
    """A payment that fails a check: carries the VerifyOutcome to answer with."""

    def __init__(self, reason: str, message: str | None = None, payer: str | None = None) -> None:
        super().__init__(reason)
        self.outcome = VerifyOutcome.invalid(reason, message, payer)


def decode_transaction(payload: Any) -> Decoded:
    """Strict base64 -> VersionedTransaction; raises ValueError on anything malformed."""
    raw = payload.get("transaction") if isinstance(payload, Mapping) else None
    if not isinstance(raw, str) or not raw:
        raise ValueError("payload.transaction is missing")
    try:
        data = base64.b64decode(raw, validate=True)
        tx = VersionedTransaction.from_bytes(data)
        msg = tx.message
        if not isinstance(msg, Message | MessageV0):
            raise ValueError("unsupported message version")
        if isinstance(msg, MessageV0):
            msg.sanitize()
        n_keys = len(msg.account_keys)
        for ix in msg.instructions:
            if ix.program_id_index >= n_keys or any(a >= n_keys for a in bytes(ix.accounts)):
                raise ValueError("instruction references a missing account")
    except Exception as exc:  # binascii.Error, ValueError and solders' own types (SanitizeError, ...)
        raise ValueError(f"not a serialized transaction: {exc}") from exc
    if len(tx.signatures) != msg.header.num_required_signatures:
        raise ValueError("signature count differs from the message header")
    return Decoded(tx, list(msg.account_keys), to_bytes_versioned(msg))


class SolanaVerifier:
    """The checks and the simulation shared by verify and prepare-settlement (fee payers: the facilitator's keys)."""

    def __init__(
        self,
        configs: Mapping[str, NetworkConfig],
        pools: Mapping[str, SolanaRpcPool],
        fee_payers: Mapping[str, Keypair],
        *,
        max_compute_units: int,
        max_signers: int,
    ) -> None:
        self._configs = configs
        self._pools = pools
        self._keys = fee_payers
        self._key_set = {k.pubkey() for k in fee_payers.values()}
        self.max_compute_units = max_compute_units
        self.max_signers = max_signers

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """Check an exact SVM payment in the TS 2.27 order (x402-spec §5.3); simulate it when asked."""
        try:
            dec, transfer = self.check(ctx)
            if simulate:
                await self.simulate(ctx, dec, str(transfer.authority))
        except Invalid as inv:
            return inv.outcome
        return VerifyOutcome(True, payer=str(transfer.authority))

    def check(self, ctx: PaymentContext) -> tuple[Decoded, Transfer]:
        """Every check that needs no RPC, in the official order; raises Invalid."""
        req = ctx.requirements
        if ctx.scheme != "exact" or req.scheme != "exact":
            raise Invalid(R.INVALID_EXACT_SVM_UNSUPPORTED_SCHEME)
        if ctx.network != req.network or req.network not in self._configs:
            raise Invalid(R.INVALID_EXACT_SVM_NETWORK_MISMATCH)
        fee_payer = req.extra.get("feePayer")
        if not isinstance(fee_payer, str) or not fee_payer:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MISSING_FEE_PAYER)
        if fee_payer not in self._keys:
            raise Invalid(R.INVALID_EXACT_SVM_FEE_PAYER_NOT_MANAGED)
        try:
            dec = decode_transaction(ctx.payload)
        except ValueError as exc:
            raise Invalid(R.INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED, str(exc)) from None
        msg = dec.tx.message
        if isinstance(msg, MessageV0) and msg.address_table_lookups:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_TRANSACTION, "address lookup tables are not supported")
        n_sig = msg.header.num_required_signatures
        if n_sig > self.max_signers:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_EXCESSIVE_SIGNERS)
        if str(dec.keys[0]) != fee_payer:
            raise Invalid(R.INVALID_EXACT_SVM_FEE_PAYER_MISMATCH)
        for i in range(1, n_sig):
            if not dec.tx.signatures[i].verify(dec.keys[i], dec.message_bytes):
                raise Invalid(
                    R.INVALID_EXACT_SVM_PAYLOAD_SIGNATURE_INVALID, f"signature {i} ({dec.keys[i]}) is invalid"
                )
        transfer = self._check_instructions(ctx, dec)
        return dec, transfer

    def _check_instructions(self, ctx: PaymentContext, dec: Decoded) -> Transfer:
        keys = dec.keys
        ixs = list(dec.tx.message.instructions)
        if not MIN_INSTRUCTIONS <= len(ixs) <= MAX_INSTRUCTIONS:
            raise Invalid(R.INVALID_EXACT_SVM_LENGTH)
        self._check_budget(keys, ixs[0], ixs[1])
        t = self._check_transfer(ctx.requirements, keys, ixs[2])
        payer = str(t.authority)
        self._check_optional(ctx.requirements, keys, ixs, payer)
        for ix in ixs:
            if any(keys[a] in self._key_set for a in bytes(ix.accounts)):
                raise Invalid(FEE_PAYER_IN_ACCOUNTS, payer=payer)
        return t

    def _check_budget(self, keys: list[Pubkey], limit_ix: Any, price_ix: Any) -> None:
        """Instructions 0 and 1: compute unit limit and price, each within bounds."""
        limit_data = bytes(limit_ix.data)
        if keys[limit_ix.program_id_index] != COMPUTE_BUDGET_PROGRAM or len(limit_data) != 5 or limit_data[0] != 2:
            raise Invalid(R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION)
        if int.from_bytes(limit_data[1:5], "little") > self.max_compute_units:
            raise Invalid(R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH)
        price_data = bytes(price_ix.data)
        if keys[price_ix.program_id_index] != COMPUTE_BUDGET_PROGRAM or len(price_data) != 9 or price_data[0] != 3:
            raise Invalid(R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION)
        if int.from_bytes(price_data[1:9], "little") > MAX_COMPUTE_UNIT_PRICE:
            raise Invalid(R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH)

    def _check_transfer(self, req: Any, keys: list[Pubkey], transfer_ix: Any) -> Transfer:
        """Instruction 2: a TransferChecked of the required mint and amount to payTo's token account."""
        program = keys[transfer_ix.program_id_index]
        data = bytes(transfer_ix.data)
        accounts = bytes(transfer_ix.accounts)
        if program not in TOKEN_PROGRAMS or len(data) != 10 or data[0] != TRANSFER_CHECKED or len(accounts) < 4:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION)
        t = Transfer(
            program,
            keys[accounts[0]],
            keys[accounts[1]],
            keys[accounts[2]],
            keys[accounts[3]],
            int.from_bytes(data[1:9], "little"),
        )
        payer = str(t.authority)
        if t.authority in self._key_set:
            raise Invalid(R.INVALID_EXACT_SVM_TRANSACTION_FEE_PAYER_TRANSFERRING_FUNDS, payer=payer)
        if str(t.mint) != req.asset:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH, payer=payer)
        try:
            expected = get_associated_token_address(Pubkey.from_string(req.pay_to), t.mint, program)
        except ValueError:
            raise Invalid(
                R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH, "payTo is not a Solana address", payer
            ) from None
        if t.dest != expected:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH, payer=payer)
        if not is_canonical_uint(req.amount) or t.amount != int(req.amount):
            raise Invalid(
                R.INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH, f"transfers {t.amount}, required {req.amount}", payer
            )
        return t

    @staticmethod
    def _check_optional(req: Any, keys: list[Pubkey], ixs: list[Any], payer: str) -> None:
        """Instructions 3+: memos and Lighthouse only; the memo the offer asks for, exactly once."""
        memos: list[bytes] = []
        for i, ix in enumerate(ixs[3:], start=3):
            prog = keys[ix.program_id_index]
            if prog == MEMO_PROGRAM:
                memos.append(bytes(ix.data))
            elif prog != LIGHTHOUSE_PROGRAM:
                raise Invalid(
                    _UNKNOWN_NTH.get(i, R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_OPTIONAL_INSTRUCTION), payer=payer
                )
        want_memo = req.extra.get("memo")
        if isinstance(want_memo, str):
            if len(memos) != 1:
                raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MEMO_COUNT, f"{len(memos)} memo instructions", payer)
            if memos[0] != want_memo.encode():
                raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MEMO_MISMATCH, payer=payer)

    def cosign(self, ctx: PaymentContext, dec: Decoded) -> VersionedTransaction:
        """The transaction with our fee payer's signature in slot 0."""
        fee_payer = self._keys.get(str(ctx.requirements.extra.get("feePayer")))
        if fee_payer is None or fee_payer.pubkey() != dec.keys[0]:
            raise BadRequest(
                "the transaction's fee payer is not one of ours", code=R.INVALID_EXACT_SVM_FEE_PAYER_MISMATCH
            )
        tx = VersionedTransaction.from_bytes(bytes(dec.tx))
        sigs = list(tx.signatures)
        sigs[0] = fee_payer.sign_message(dec.message_bytes)
        tx.signatures = sigs
        return tx

    async def simulate(
        self, ctx: PaymentContext, dec: Decoded, payer: str, *, already_processed_ok: bool = False
    ) -> None:
        """simulateTransaction of the co-signed transaction; a failing one raises Invalid."""
        tx = self.cosign(ctx, dec)
        pool = pool_for(self._pools, ctx.requirements.network)

        async def run(c: AsyncClient) -> Any:
            return await c.simulate_transaction(tx, sig_verify=False, commitment=Confirmed)

        try:
            resp = await pool.call(run)
        except RPCException as exc:
            raise ChainRejected(f"simulateTransaction was refused: {exc}", network=pool.network) from exc
        err = resp.value.err
        if err == TransactionErrorFieldless.AlreadyProcessed and already_processed_ok:
            return  # this very transaction was sent before: preparing it again is harmless
        if err is not None:
            logs = resp.value.logs or []
            raise Invalid(R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED, f"{err}: {' | '.join(logs[-3:])}", payer)
