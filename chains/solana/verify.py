"""Solana ``exact`` verification: decode, the TS 2.27 checks in order (architecture.md §5.3), co-sign and simulate."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.message import Message, MessageV0, MessageV1, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless

from chains.base import PaymentContext, VerifyOutcome
from chains.config import NetworkConfig
from chains.solana.lookup import LookupFailed, resolve_lookups
from chains.solana.outcome import Transfer, decode_transfer, inner_transfers, matching, top_level_transfers
from chains.solana.payer import (
    COMPUTE_BUDGET_PROGRAM,
    LIGHTHOUSE_PROGRAM,
    MEMO_PROGRAM,
)
from chains.solana.rpc import SolanaRpcPool, pool_for
from chains.solana.smartwallet import RECOVERABLE, Refused, SmartWalletOptions, check_structure
from x402.errors import BadRequest, ChainRejected
from x402.wire import reasons as R
from x402.wire.models import is_canonical_uint

#: architecture.md §5.3: SetComputeUnitPrice is capped at 5 lamports per compute unit.
MAX_COMPUTE_UNIT_PRICE: Final = 5_000_000  # micro-lamports
#: Our own cap on SetComputeUnitLimit (official clients ask for 20 000): bounds the fee we sponsor.
DEFAULT_MAX_COMPUTE_UNITS: Final = 200_000
DEFAULT_MAX_SIGNERS: Final = 4
MIN_INSTRUCTIONS: Final = 3
MAX_INSTRUCTIONS: Final = 7  # limit, price, transfer + up to four optional (memo, at most three Lighthouse)
#: Wallets (Phantom, ...) add up to three Lighthouse assertion instructions; a fourth is refused.
MAX_LIGHTHOUSE: Final = 3
#: Version-1 messages carry the compute budget in ``message.config``: the transfer comes first.
V1_MAX_INSTRUCTIONS: Final = 5
SUPPORTED_VERSIONS: Final = ("legacy", 0, 1)

#: Legacy (x402@1.2.0) code, kept because the spec forbids the fee payer in any instruction's accounts.
FEE_PAYER_IN_ACCOUNTS: Final = "invalid_exact_svm_payload_transaction_fee_payer_included_in_instruction_accounts"
_UNKNOWN_NTH = {
    3: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FOURTH_INSTRUCTION,
    4: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FIFTH_INSTRUCTION,
    5: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SIXTH_INSTRUCTION,
    6: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SEVENTH_INSTRUCTION,
}


@dataclass(frozen=True, slots=True)
class Decoded:
    tx: VersionedTransaction
    keys: list[Pubkey]  # static account keys
    message_bytes: bytes

    @property
    def version(self) -> str | int:
        """``"legacy"``, 0 or 1."""
        msg = self.tx.message
        return 1 if isinstance(msg, MessageV1) else 0 if isinstance(msg, MessageV0) else "legacy"


@dataclass(frozen=True, slots=True)
class Checked:
    """A payment that passed every check needing no simulation; ``path`` says which rules accepted its layout."""

    dec: Decoded
    keys: list[Pubkey]  # static + lookup-table accounts, in runtime order
    path: str  # "static" | "smart_wallet"
    transfer: Transfer | None  # the static path's top-level transfer
    payer: str


class Invalid(Exception):
    """A payment that fails a check: carries the VerifyOutcome to answer with."""

    def __init__(self, reason: str, message: str | None = None, payer: str | None = None) -> None:
        super().__init__(reason)
        self.outcome = VerifyOutcome.invalid(reason, message, payer)


class UnsupportedVersion(ValueError):
    """A message version this facilitator cannot evaluate."""


def _message_version(data: bytes) -> int | None:
    """The message version of a serialized transaction (None: legacy or v0, which start with the signatures).

    Version-1 transactions (SIMD-0385) put the message first, so their first byte is the version prefix; a
    signature count of 128 or more, the only other way to start with the high bit set, cannot fit a transaction.
    """
    if not data or not data[0] & 0x80:
        return None
    return data[0] & 0x7F


def decode_transaction(payload: Any) -> Decoded:
    """Strict base64 -> VersionedTransaction (legacy, v0 or v1); ValueError on anything malformed.

    A message of a later version raises UnsupportedVersion (a ValueError).
    """
    raw = payload.get("transaction") if isinstance(payload, Mapping) else None
    if not isinstance(raw, str) or not raw:
        raise ValueError("payload.transaction is missing")
    try:
        data = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from None
    version = _message_version(data)
    if version is not None and version > 1:
        raise UnsupportedVersion(f"transaction message version {version} is not supported")
    try:
        tx = VersionedTransaction.from_bytes(data)
        msg = tx.message
        if not isinstance(msg, Message | MessageV0 | MessageV1):
            raise UnsupportedVersion("unsupported message version")
        if isinstance(msg, MessageV0 | MessageV1):
            msg.sanitize()
        n_keys = len(msg.account_keys) + _loaded_count(msg)
        for ix in msg.instructions:
            if ix.program_id_index >= n_keys or any(a >= n_keys for a in bytes(ix.accounts)):
                raise ValueError("instruction references a missing account")
    except UnsupportedVersion:
        raise
    except Exception as exc:  # ValueError and solders' own types (SanitizeError, ...)
        raise ValueError(f"not a serialized transaction: {exc}") from exc
    if len(tx.signatures) != msg.header.num_required_signatures:
        raise ValueError("signature count differs from the message header")
    return Decoded(tx, list(msg.account_keys), to_bytes_versioned(msg))


def _loaded_count(msg: Any) -> int:
    lookups = getattr(msg, "address_table_lookups", None) or []
    return sum(len(bytes(lk.writable_indexes)) + len(bytes(lk.readonly_indexes)) for lk in lookups)


def payer_hint(dec: Decoded) -> str:
    """The transfer authority of the first top-level transfer, else the first signer after the fee payer."""
    n_keys = len(dec.keys)
    for ix in dec.tx.message.instructions:
        accounts = bytes(ix.accounts)
        if ix.program_id_index < n_keys and all(a < n_keys for a in accounts):
            t = decode_transfer(
                dec.keys[ix.program_id_index], [dec.keys[a] for a in accounts], bytes(ix.data), inner=False
            )
            if t is not None:
                return str(t.authority)
    n_sig = dec.tx.message.header.num_required_signatures
    return str(dec.keys[1]) if n_sig > 1 else ""


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
        smart_wallet: SmartWalletOptions | None = None,
    ) -> None:
        self._configs = configs
        self._pools = pools
        self._keys = fee_payers
        self._key_set = {k.pubkey() for k in fee_payers.values()}
        self.max_compute_units = max_compute_units
        self.max_signers = max_signers
        self.smart_wallet = smart_wallet or SmartWalletOptions()

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """Check an exact SVM payment (architecture.md §5.3); simulate it when asked (smart wallets: always)."""
        try:
            checked = await self.check(ctx)
            if simulate or checked.path == "smart_wallet":
                payer = (await self.simulate(ctx, checked)).authority
                return VerifyOutcome(True, payer=str(payer))
        except Invalid as inv:
            return inv.outcome
        return VerifyOutcome(True, payer=checked.payer)

    async def check(self, ctx: PaymentContext) -> Checked:
        """Every check before the simulation, in the official order; lookup tables are read here. Raises Invalid."""
        dec = self._check_envelope(ctx)
        keys = dec.keys + await self._loaded(ctx, dec)
        try:
            t = self._check_instructions(ctx, dec, keys)
        except Invalid as inv:
            if not self.smart_wallet.enabled or not self._recoverable(inv.outcome.reason, dec, keys):
                raise
            try:
                check_structure(self.smart_wallet, dec.tx.message, keys, self._key_set)
            except Refused as ref:
                raise Invalid(ref.reason, ref.message) from None
            self._check_memo(
                ctx.requirements,
                [ix for ix in dec.tx.message.instructions if keys[ix.program_id_index] == MEMO_PROGRAM],
                keys,
                "",
            )
            return Checked(dec, keys, "smart_wallet", None, payer_hint(dec))
        return Checked(dec, keys, "static", t, str(t.authority))

    @staticmethod
    def _recoverable(reason: str | None, dec: Decoded, keys: list[Pubkey]) -> bool:
        """A static failure the smart-wallet path may overrule: a layout reason, or a static compute cap when the
        transaction does not have the static layout at all (its own, smart-wallet caps then apply)."""
        if reason in RECOVERABLE:
            return True
        if reason != R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH:
            return False
        msg = dec.tx.message
        at = 0 if isinstance(msg, MessageV1) else 2
        ixs = list(msg.instructions)
        if len(ixs) <= at:
            return True
        ix = ixs[at]
        return (
            decode_transfer(
                keys[ix.program_id_index], [keys[a] for a in bytes(ix.accounts)], bytes(ix.data), inner=False
            )
            is None
        )

    def _check_envelope(self, ctx: PaymentContext) -> Decoded:
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
        except UnsupportedVersion as exc:
            raise Invalid(R.INVALID_EXACT_SVM_UNSUPPORTED_TRANSACTION_VERSION, str(exc)) from None
        except ValueError as exc:
            raise Invalid(R.INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED, str(exc)) from None
        msg = dec.tx.message
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
        return dec

    async def _loaded(self, ctx: PaymentContext, dec: Decoded) -> list[Pubkey]:
        """The lookup-table accounts of a v0 message, read through RPC; unresolvable ones fail closed."""
        lookups = getattr(dec.tx.message, "address_table_lookups", None) or []
        if not lookups:
            return []
        try:
            return await resolve_lookups(pool_for(self._pools, ctx.requirements.network), lookups)
        except LookupFailed as exc:
            raise Invalid(R.SW_ALT_RESOLUTION_FAILED, str(exc)) from None

    def _check_instructions(self, ctx: PaymentContext, dec: Decoded, keys: list[Pubkey]) -> Transfer:
        msg = dec.tx.message
        ixs = list(msg.instructions)
        if isinstance(msg, MessageV1):
            if not 1 <= len(ixs) <= V1_MAX_INSTRUCTIONS:
                raise Invalid(R.INVALID_EXACT_SVM_LENGTH)
            self._check_budget_config(msg.config)
            first = 0
        else:
            if not MIN_INSTRUCTIONS <= len(ixs) <= MAX_INSTRUCTIONS:
                raise Invalid(R.INVALID_EXACT_SVM_LENGTH)
            self._check_budget(keys, ixs[0], ixs[1])
            first = 2
        t = self._check_transfer(ctx.requirements, keys, ixs[first])
        payer = str(t.authority)
        self._check_optional(ctx.requirements, keys, ixs, first + 1, payer)
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

    def _check_budget_config(self, cfg: Any) -> None:
        """Version 1: the compute budget of ``message.config`` (limit required; price in micro-lamports per unit)."""
        if cfg.compute_unit_limit is None:
            raise Invalid(R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION, "message.config sets no compute-unit limit")
        if cfg.compute_unit_limit > self.max_compute_units:
            raise Invalid(R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH)
        if (cfg.priority_fee or 0) > MAX_COMPUTE_UNIT_PRICE:
            raise Invalid(R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH)

    def _check_transfer(self, req: Any, keys: list[Pubkey], transfer_ix: Any) -> Transfer:
        """The transfer instruction: a TransferChecked of the required mint, at least the amount, to payTo's ATA."""
        t = decode_transfer(
            keys[transfer_ix.program_id_index],
            [keys[a] for a in bytes(transfer_ix.accounts)],
            bytes(transfer_ix.data),
            inner=False,
        )
        if t is None:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION)
        payer = str(t.authority)
        if t.authority in self._key_set:
            raise Invalid(R.INVALID_EXACT_SVM_TRANSACTION_FEE_PAYER_TRANSFERRING_FUNDS, payer=payer)
        if str(t.mint) != req.asset:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH, payer=payer)
        try:
            expected = get_associated_token_address(Pubkey.from_string(req.pay_to), t.mint, t.program)
        except ValueError:
            raise Invalid(
                R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH, "payTo is not a Solana address", payer
            ) from None
        if t.dest != expected:
            raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH, payer=payer)
        if not is_canonical_uint(req.amount) or t.amount < int(req.amount):
            raise Invalid(
                R.INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH, f"transfers {t.amount}, required {req.amount}", payer
            )
        return t

    def _check_optional(self, req: Any, keys: list[Pubkey], ixs: list[Any], first: int, payer: str) -> None:
        """After the transfer: memos and at most three Lighthouse instructions; the memo the offer asks for, once."""
        memos: list[Any] = []
        lighthouse = 0
        for i, ix in enumerate(ixs[first:], start=first):
            prog = keys[ix.program_id_index]
            if prog == MEMO_PROGRAM:
                memos.append(ix)
                continue
            if prog == LIGHTHOUSE_PROGRAM and lighthouse < MAX_LIGHTHOUSE:
                lighthouse += 1
                continue
            why = "a fourth Lighthouse instruction" if prog == LIGHTHOUSE_PROGRAM else f"program {prog}"
            raise Invalid(_UNKNOWN_NTH.get(i, R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_OPTIONAL_INSTRUCTION), why, payer)
        self._check_memo(req, memos, keys, payer)

    @staticmethod
    def _check_memo(req: Any, memos: list[Any], keys: list[Pubkey], payer: str) -> None:
        want_memo = req.extra.get("memo")
        if isinstance(want_memo, str):
            if len(memos) != 1:
                raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MEMO_COUNT, f"{len(memos)} memo instructions", payer)
            if bytes(memos[0].data) != want_memo.encode():
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

    async def simulate(self, ctx: PaymentContext, checked: Checked, *, already_processed_ok: bool = False) -> Transfer:
        """simulateTransaction (with inner instructions) of the co-signed transaction, then the outcome check:
        exactly one TransferChecked, top-level or CPI, pays the requirement. Returns it; raises Invalid."""
        smart = checked.path == "smart_wallet"
        tx = self.cosign(ctx, checked.dec)
        pool = pool_for(self._pools, ctx.requirements.network)

        async def run(c: AsyncClient) -> Any:
            return await c.simulate_transaction(tx, sig_verify=False, commitment=Confirmed, inner_instructions=True)

        try:
            resp = await pool.call(run)
        except RPCException as exc:
            raise ChainRejected(f"simulateTransaction was refused: {exc}", network=pool.network) from exc
        err = resp.value.err
        top = top_level_transfers(checked.keys, checked.dec.tx.message.instructions)
        if err == TransactionErrorFieldless.AlreadyProcessed and already_processed_ok and checked.transfer:
            return checked.transfer  # this very transaction was sent before: preparing it again is harmless
        if err is not None:
            logs = resp.value.logs or []
            reason = R.SW_SIMULATION_FAILED if smart else R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED
            raise Invalid(reason, f"{err}: {' | '.join(logs[-3:])}", checked.payer)
        return self.outcome(ctx, top + inner_transfers(resp.value.inner_instructions, checked.keys), smart)

    def outcome(self, ctx: PaymentContext, transfers: list[Transfer], smart: bool) -> Transfer:
        """Exactly one transfer that pays the requirement, none by a fee payer; raises Invalid."""
        for t in transfers:
            if t.authority in self._key_set:
                raise Invalid(R.INVALID_EXACT_SVM_TRANSACTION_FEE_PAYER_TRANSFERRING_FUNDS, payer=str(t.authority))
        req = ctx.requirements
        try:
            found = matching(transfers, req.asset, req.pay_to, int(req.amount))
        except ValueError:
            raise Invalid(
                R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH, "payTo or asset is not a Solana address"
            ) from None
        if not found:
            payer = str(transfers[0].authority) if transfers else None
            if not smart:
                raise Invalid(R.INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION, payer=payer)
            reason = R.SW_TRANSFER_MISMATCH if transfers else R.SW_NO_TRANSFER_IN_SIMULATION
            raise Invalid(reason, payer=payer)
        if len(found) > 1:
            reason = R.SW_MULTIPLE_MATCHING_TRANSFERS if smart else R.INVALID_EXACT_SVM_MULTIPLE_MATCHING_TRANSFERS
            raise Invalid(reason, f"{len(found)} transfers pay the requirement", str(found[0].authority))
        return found[0]
