"""Solana (SVM) chain adapter: verifies, co-signs, sends and confirms ``exact`` payments (x402-spec §5)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpcore2  # noqa: F401  # imported here: httpx2 imports it lazily (reading metadata) on first client
import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.commitment_config import CommitmentLevel
from solders.errors import SerdeJSONError
from solders.keypair import Keypair
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.rpc.config import RpcContextConfig
from solders.rpc.requests import IsBlockhashValid
from solders.rpc.responses import IsBlockhashValidResp
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus, TransactionErrorFieldless

from chains.base import (
    Confirmation,
    PaymentContext,
    PaymentStatus,
    PreparedSettlement,
    ReplayKey,
    SettlementRejected,
    TxCheck,
    TxVerification,
    VerifyOutcome,
)
from chains.solana.payer import (
    COMPUTE_BUDGET_PROGRAM,
    LIGHTHOUSE_PROGRAM,
    MEMO_PROGRAM,
    TOKEN_PROGRAMS,
    TRANSFER_CHECKED,
)
from x402.errors import BadRequest, ChainRejected, ChainUnavailable, ConfigError
from x402.settings import NetworkConfig, Settings
from x402.wire import reasons as R
from x402.wire.models import PaymentRequirements, SupportedKind, is_canonical_uint
from x402.wire.networks import to_v1_name

log = logging.getLogger("chains.solana")
T = TypeVar("T")

#: x402-spec §5.3: SetComputeUnitPrice is capped at 5 lamports per compute unit.
MAX_COMPUTE_UNIT_PRICE: Final = 5_000_000  # micro-lamports
#: Our own cap on SetComputeUnitLimit (official clients ask for 20 000): bounds the fee we sponsor.
DEFAULT_MAX_COMPUTE_UNITS: Final = 200_000
DEFAULT_MAX_SIGNERS: Final = 4
MIN_INSTRUCTIONS: Final = 3
MAX_INSTRUCTIONS: Final = 7  # TS 2.27: limit, price, transfer + up to four Lighthouse/Memo
#: Backstop for the reconciler's re-broadcast window (unix time); a blockhash lives 150 blocks (~60-90 s) but
#: block height stalls while the cluster does. ``confirm(ctx, ...)`` detects expiry from the chain itself.
TX_LIFETIME_SECONDS: Final = 600
FINALIZED_CONFIRMATIONS: Final = 32
#: Legacy (x402@1.2.0) code, kept because the spec forbids the fee payer in any instruction's accounts.
FEE_PAYER_IN_ACCOUNTS: Final = "invalid_exact_svm_payload_transaction_fee_payer_included_in_instruction_accounts"
TRANSACTION_NOT_FOUND: Final = "transaction_not_found"
_UNKNOWN_NTH = {
    3: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FOURTH_INSTRUCTION,
    4: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FIFTH_INSTRUCTION,
    5: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SIXTH_INSTRUCTION,
    6: R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SEVENTH_INSTRUCTION,
}
_DONE = (TransactionConfirmationStatus.Confirmed, TransactionConfirmationStatus.Finalized)
#: SerdeJSONError: an answer solders cannot parse (malformed, or nested past serde_json's 128-level limit) counts
#: as a failed endpoint, like a transport error, instead of escaping as an unexpected exception
_NETWORK_ERRORS = (SolanaRpcException, httpx2.HTTPError, OSError, TimeoutError, SerdeJSONError)


def parse_keypair(text: str, what: str = "an X402_SVM_FEE_PAYER_KEYS entry") -> Keypair:
    """A keypair from a base58 64-byte secret key, a base58 32-byte seed or a solana-keygen JSON byte array."""
    text = text.strip()
    try:
        if text.startswith("["):
            raw = bytes(json.loads(text))
            return Keypair.from_bytes(raw) if len(raw) == 64 else Keypair.from_seed(raw)
        if len(text) <= 44:
            return Keypair.from_seed(bytes(Pubkey.from_string(text)))
        return Keypair.from_base58_string(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} is not a valid Solana secret key") from exc


@dataclass(frozen=True, slots=True)
class _Transfer:
    program: Pubkey
    source: Pubkey
    mint: Pubkey
    dest: Pubkey
    authority: Pubkey
    amount: int


@dataclass(frozen=True, slots=True)
class _Decoded:
    tx: VersionedTransaction
    keys: list[Pubkey]
    message_bytes: bytes


class _Invalid(Exception):
    def __init__(self, reason: str, message: str | None = None, payer: str | None = None) -> None:
        super().__init__(reason)
        self.outcome = VerifyOutcome.invalid(reason, message, payer)


def _decode(payload: Any) -> _Decoded:
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
    return _Decoded(tx, list(msg.account_keys), to_bytes_versioned(msg))


class _Pool:
    """The RPC clients of one network, tried in order; connection errors and timeouts fail over to the next."""

    def __init__(self, network: str, urls: Sequence[str], timeout: float) -> None:
        self.network = network
        self.timeout = timeout
        self.clients = [AsyncClient(u, timeout=timeout) for u in urls]
        self._first = 0

    async def call(self, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run ``fn`` against the first client that answers; none -> ChainUnavailable."""
        last: BaseException | None = None
        n = len(self.clients)
        for i in range(n):
            idx = (self._first + i) % n
            try:
                async with asyncio.timeout(self.timeout):
                    result = await fn(self.clients[idx])
            except _NETWORK_ERRORS as exc:
                last = exc
                log.warning("solana rpc %d of %s failed: %s", idx, self.network, type(exc).__name__)
                continue
            self._first = idx
            return result
        raise ChainUnavailable(
            f"no RPC endpoint of {self.network} answered ({type(last).__name__})", network=self.network
        )

    async def close(self) -> None:
        """Close every client."""
        for c in self.clients:
            await c.close()


class SolanaAdapter:
    """The ``solana:*`` chain adapter (exact scheme; fee payers are the facilitator's keys)."""

    name = "solana"

    def __init__(
        self,
        networks: Sequence[NetworkConfig],
        fee_payers: Sequence[Keypair],
        *,
        rpc_timeout: float = 5.0,
        poll_interval: float = 0.4,
        max_compute_units: int = DEFAULT_MAX_COMPUTE_UNITS,
        max_signers: int = DEFAULT_MAX_SIGNERS,
    ) -> None:
        self._configs = {n.network: n for n in networks}
        self._pools = {n.network: _Pool(n.network, n.rpc_urls, rpc_timeout) for n in networks}
        self._keys = {str(k.pubkey()): k for k in fee_payers}
        self._key_set = {k.pubkey() for k in fee_payers}
        self.poll_interval = poll_interval
        self.max_compute_units = max_compute_units
        self.max_signers = max_signers

    # ------------------------------------------------------------------ discovery

    def networks(self) -> Sequence[str]:
        """CAIP-2 ids this adapter serves."""
        return list(self._configs)

    def supported_kinds(self) -> list[SupportedKind]:
        """v2 kinds with ``extra.feePayer`` (our first fee payer), plus v1 kinds where a v1 name exists."""
        if not self._keys:
            return []
        extra = {"feePayer": next(iter(self._keys))}
        out: list[SupportedKind] = []
        for net in self._configs:
            out.append(SupportedKind(x402_version=2, scheme="exact", network=net, extra=dict(extra)))
        for net in self._configs:
            v1 = to_v1_name(net)
            if v1 is not None and v1 != net:
                out.append(SupportedKind(x402_version=1, scheme="exact", network=v1, extra=dict(extra)))
        return out

    def signers(self) -> dict[str, list[str]]:
        """Fee payer addresses under ``solana:*``."""
        return {"solana:*": list(self._keys)} if self._keys else {}

    def _pool(self, network: str) -> _Pool:
        pool = self._pools.get(network)
        if pool is None:
            raise BadRequest(f"network {network!r} is not configured on this facilitator", code=R.INVALID_NETWORK)
        return pool

    # ------------------------------------------------------------------ verify

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """Check an exact SVM payment in the TS 2.27 order (x402-spec §5.3); simulate it when asked."""
        try:
            dec, transfer = self._check(ctx)
            if simulate:
                await self._simulate(ctx, dec, str(transfer.authority))
        except _Invalid as inv:
            return inv.outcome
        return VerifyOutcome(True, payer=str(transfer.authority))

    def _check(self, ctx: PaymentContext) -> tuple[_Decoded, _Transfer]:
        req = ctx.requirements
        if ctx.scheme != "exact" or req.scheme != "exact":
            raise _Invalid(R.INVALID_EXACT_SVM_UNSUPPORTED_SCHEME)
        if ctx.network != req.network or req.network not in self._configs:
            raise _Invalid(R.INVALID_EXACT_SVM_NETWORK_MISMATCH)
        fee_payer = req.extra.get("feePayer")
        if not isinstance(fee_payer, str) or not fee_payer:
            raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MISSING_FEE_PAYER)
        if fee_payer not in self._keys:
            raise _Invalid(R.INVALID_EXACT_SVM_FEE_PAYER_NOT_MANAGED)
        try:
            dec = _decode(ctx.payload)
        except ValueError as exc:
            raise _Invalid(R.INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED, str(exc)) from None
        msg = dec.tx.message
        if isinstance(msg, MessageV0) and msg.address_table_lookups:
            raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_TRANSACTION, "address lookup tables are not supported")
        n_sig = msg.header.num_required_signatures
        if n_sig > self.max_signers:
            raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_EXCESSIVE_SIGNERS)
        if str(dec.keys[0]) != fee_payer:
            raise _Invalid(R.INVALID_EXACT_SVM_FEE_PAYER_MISMATCH)
        for i in range(1, n_sig):
            if not dec.tx.signatures[i].verify(dec.keys[i], dec.message_bytes):
                raise _Invalid(
                    R.INVALID_EXACT_SVM_PAYLOAD_SIGNATURE_INVALID, f"signature {i} ({dec.keys[i]}) is invalid"
                )
        transfer = self._check_instructions(ctx, dec)
        return dec, transfer

    def _check_instructions(self, ctx: PaymentContext, dec: _Decoded) -> _Transfer:
        req = ctx.requirements
        keys = dec.keys
        ixs = list(dec.tx.message.instructions)
        if not MIN_INSTRUCTIONS <= len(ixs) <= MAX_INSTRUCTIONS:
            raise _Invalid(R.INVALID_EXACT_SVM_LENGTH)
        limit_ix, price_ix, transfer_ix = ixs[0], ixs[1], ixs[2]
        limit_data = bytes(limit_ix.data)
        if keys[limit_ix.program_id_index] != COMPUTE_BUDGET_PROGRAM or len(limit_data) != 5 or limit_data[0] != 2:
            raise _Invalid(R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION)
        if int.from_bytes(limit_data[1:5], "little") > self.max_compute_units:
            raise _Invalid(R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH)
        price_data = bytes(price_ix.data)
        if keys[price_ix.program_id_index] != COMPUTE_BUDGET_PROGRAM or len(price_data) != 9 or price_data[0] != 3:
            raise _Invalid(R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION)
        if int.from_bytes(price_data[1:9], "little") > MAX_COMPUTE_UNIT_PRICE:
            raise _Invalid(R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH)
        program = keys[transfer_ix.program_id_index]
        data = bytes(transfer_ix.data)
        accounts = bytes(transfer_ix.accounts)
        if program not in TOKEN_PROGRAMS or len(data) != 10 or data[0] != TRANSFER_CHECKED or len(accounts) < 4:
            raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION)
        t = _Transfer(
            program,
            keys[accounts[0]],
            keys[accounts[1]],
            keys[accounts[2]],
            keys[accounts[3]],
            int.from_bytes(data[1:9], "little"),
        )
        payer = str(t.authority)
        if t.authority in self._key_set:
            raise _Invalid(R.INVALID_EXACT_SVM_TRANSACTION_FEE_PAYER_TRANSFERRING_FUNDS, payer=payer)
        if str(t.mint) != req.asset:
            raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH, payer=payer)
        try:
            expected = get_associated_token_address(Pubkey.from_string(req.pay_to), t.mint, program)
        except ValueError:
            raise _Invalid(
                R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH, "payTo is not a Solana address", payer
            ) from None
        if t.dest != expected:
            raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH, payer=payer)
        if not is_canonical_uint(req.amount) or t.amount != int(req.amount):
            raise _Invalid(
                R.INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH, f"transfers {t.amount}, required {req.amount}", payer
            )
        memos: list[bytes] = []
        for i, ix in enumerate(ixs[3:], start=3):
            prog = keys[ix.program_id_index]
            if prog == MEMO_PROGRAM:
                memos.append(bytes(ix.data))
            elif prog != LIGHTHOUSE_PROGRAM:
                raise _Invalid(
                    _UNKNOWN_NTH.get(i, R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_OPTIONAL_INSTRUCTION), payer=payer
                )
        want_memo = req.extra.get("memo")
        if isinstance(want_memo, str):
            if len(memos) != 1:
                raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MEMO_COUNT, f"{len(memos)} memo instructions", payer)
            if memos[0] != want_memo.encode():
                raise _Invalid(R.INVALID_EXACT_SVM_PAYLOAD_MEMO_MISMATCH, payer=payer)
        for ix in ixs:
            if any(keys[a] in self._key_set for a in bytes(ix.accounts)):
                raise _Invalid(FEE_PAYER_IN_ACCOUNTS, payer=payer)
        return t

    def _cosign(self, ctx: PaymentContext, dec: _Decoded) -> VersionedTransaction:
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

    async def _simulate(
        self, ctx: PaymentContext, dec: _Decoded, payer: str, *, already_processed_ok: bool = False
    ) -> None:
        tx = self._cosign(ctx, dec)
        pool = self._pool(ctx.requirements.network)

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
            raise _Invalid(R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED, f"{err}: {' | '.join(logs[-3:])}", payer)

    # ------------------------------------------------------------------ settle

    def replay_key(self, ctx: PaymentContext) -> ReplayKey:
        """Network, mint, transfer authority and the message hash: one transaction settles once."""
        try:
            dec = _decode(ctx.payload)
        except ValueError as exc:
            raise BadRequest(str(exc), code=R.INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED) from None
        payer = ""
        ixs = dec.tx.message.instructions
        if len(ixs) >= 3 and len(bytes(ixs[2].accounts)) >= 4:
            payer = str(dec.keys[bytes(ixs[2].accounts)[3]])
        return ReplayKey(ctx.requirements.network, ctx.requirements.asset, payer, str(dec.tx.message.hash()))

    async def prepare_settlement(
        self, ctx: PaymentContext, *, nonce_floor: int | None = None, signer: str | None = None
    ) -> PreparedSettlement:
        """Re-check, co-sign as the fee payer and simulate; raises SettlementRejected when it would fail.

        ``tx_id`` is the fee payer's signature (deterministic for a given message), ``valid_until`` unix time.
        """
        try:
            dec, transfer = self._check(ctx)
            await self._simulate(ctx, dec, str(transfer.authority), already_processed_ok=True)
        except _Invalid as inv:
            o = inv.outcome
            raise SettlementRejected(o.reason or R.INVALID_EXACT_SVM_VERIFICATION_FAILED, o.message, o.payer) from None
        tx = self._cosign(ctx, dec)
        return PreparedSettlement(
            tx_id=str(tx.signatures[0]),
            raw=bytes(tx),
            signer=str(dec.keys[0]),
            valid_until=int(time.time()) + TX_LIFETIME_SECONDS,
        )

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """sendTransaction with preflight; an already processed transaction is fine, other refusals raise 502."""
        pool = self._pool(network)
        opts = TxOpts(skip_confirmation=True, skip_preflight=False, preflight_commitment=Confirmed)

        async def run(c: AsyncClient) -> Any:
            return await c.send_raw_transaction(prepared.raw, opts)

        try:
            await pool.call(run)
        except RPCException as exc:
            text = str(exc)
            if "AlreadyProcessed" in text or "already been processed" in text:
                return
            raise ChainRejected(
                f"sendTransaction was refused: {text[:500]}",
                network=network,
                reason=R.INVALID_EXACT_SVM_TRANSACTION_FAILED,
            ) from exc

    async def _status(self, pool: _Pool, sig: Signature) -> Any:
        async def run(c: AsyncClient) -> Any:
            return await c.get_signature_statuses([sig], search_transaction_history=True)

        return (await pool.call(run)).value[0]

    async def _get_tx(self, pool: _Pool, sig: Signature) -> Any:
        async def run(c: AsyncClient) -> Any:
            return await c.get_transaction(sig, commitment=Confirmed, max_supported_transaction_version=0)

        try:
            return (await pool.call(run)).value
        except RPCException:
            return None

    async def _blockhash_valid(self, pool: _Pool, blockhash: Any) -> bool:
        async def run(c: AsyncClient) -> Any:
            body = IsBlockhashValid(blockhash, RpcContextConfig(CommitmentLevel.Processed))
            return await c._provider.make_request(body, IsBlockhashValidResp)

        try:
            return bool((await pool.call(run)).value)
        except RPCException:
            return True  # cannot tell: keep treating it as possibly landable

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, *, timeout: float) -> Confirmation:
        """Poll getSignatureStatuses until confirmed/finalized, failed or ``timeout``.

        Not seen by then: ``unknown`` (or ``failed`` when ``ctx`` shows its blockhash expired, so it can never
        land); seen but only processed: ``pending``.
        """
        pool = self._pool(network)
        try:
            sig = Signature.from_string(tx_id)
        except ValueError:
            return Confirmation("failed", R.INVALID_EXACT_SVM_TRANSACTION_FAILED, "not a Solana signature")
        deadline = time.monotonic() + max(timeout, 0.0)
        seen = False
        while True:
            st = await self._status(pool, sig)
            if st is not None:
                seen = True
                if st.err is not None:
                    return Confirmation("failed", R.INVALID_EXACT_SVM_TRANSACTION_FAILED, str(st.err), block=st.slot)
                if st.confirmation_status in _DONE:
                    return await self._confirmed(ctx, pool, sig, st.slot)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self.poll_interval, remaining))
        if seen:
            return Confirmation("pending")
        if ctx is not None:
            try:
                blockhash = _decode(ctx.payload).tx.message.recent_blockhash
            except ValueError:
                return Confirmation("unknown")
            if not await self._blockhash_valid(pool, blockhash):
                if await self._status(pool, sig) is None:  # it may have landed just before expiring
                    return Confirmation(
                        "failed",
                        R.INVALID_EXACT_SVM_TRANSACTION_FAILED,
                        "blockhash expired before the transaction landed",
                    )
                return Confirmation("pending")
        return Confirmation("unknown")

    async def _confirmed(self, ctx: PaymentContext | None, pool: _Pool, sig: Signature, slot: int) -> Confirmation:
        if ctx is None:
            return Confirmation("confirmed", block=slot)
        got = await self._get_tx(pool, sig)
        if got is None:
            return Confirmation("confirmed", block=slot)
        req = ctx.requirements
        moved = _received(got, req.asset, req.pay_to)
        if moved.received < int(req.amount):
            return Confirmation(
                "failed",
                R.POST_SETTLEMENT_TRANSFER_NOT_CONFIRMED,
                f"payTo received {moved.received}, expected {req.amount}",
                amount=moved.received,
                block=slot,
            )
        return Confirmation("confirmed", amount=moved.received, block=slot)

    # ------------------------------------------------------------------ payer side: did my payment land?

    async def payment_status(
        self, network: str, payload: Mapping[str, Any], requirements: PaymentRequirements
    ) -> PaymentStatus:
        """settled when a confirmed transaction carries our message; void when none did and its blockhash expired.

        The payer does not know the fee payer's signature (the transaction id), so the payer's recent signatures
        are searched for a landed transaction with the same message (which the payer's own signature pins).
        """
        pool = self._pool(network)
        try:
            dec = _decode(payload)
        except ValueError as exc:
            return PaymentStatus("void", message=f"unreadable transaction: {exc}")
        signers = dec.keys[: dec.tx.message.header.num_required_signatures]
        found = await self._landed(pool, dec, signers[1:] or signers)
        if found is not None:
            return found
        if await self._blockhash_valid(pool, dec.tx.message.recent_blockhash):
            return PaymentStatus("pending", message="not landed; its blockhash is still valid")
        # it may have landed just before the blockhash expired: look once more before calling it void
        found = await self._landed(pool, dec, signers[1:] or signers)
        if found is not None:
            return found
        return PaymentStatus("void", message="not landed and its blockhash expired")

    async def _landed(self, pool: _Pool, dec: _Decoded, payers: Sequence[Pubkey]) -> PaymentStatus | None:
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

    # ------------------------------------------------------------------ verify by transaction

    async def verify_transaction(self, check: TxCheck) -> TxVerification:
        """A confirmed transaction that moved >= ``min_amount`` of ``asset`` into ``pay_to``'s token account."""
        pool = self._pool(check.network)
        try:
            sig = Signature.from_string(check.tx_id)
        except ValueError:
            return TxVerification("invalid", reason=TRANSACTION_NOT_FOUND)
        st = await self._status(pool, sig)
        if st is None:
            return TxVerification("invalid", reason=TRANSACTION_NOT_FOUND)
        if st.err is not None:
            return TxVerification("invalid", reason=R.INVALID_EXACT_SVM_TRANSACTION_FAILED, block=st.slot)
        confirmations = FINALIZED_CONFIRMATIONS if st.confirmations is None else int(st.confirmations)
        if st.confirmation_status == TransactionConfirmationStatus.Finalized:
            confirmations = max(confirmations, FINALIZED_CONFIRMATIONS)
        elif st.confirmation_status == TransactionConfirmationStatus.Confirmed:
            confirmations = max(confirmations, 1)  # optimistically confirmed: at least the block that holds it
        if st.confirmation_status not in _DONE:
            return TxVerification("pending", confirmations=confirmations, block=st.slot)
        got = await self._get_tx(pool, sig)
        if got is None:
            return TxVerification("pending", confirmations=confirmations, block=st.slot)
        moved = _received(got, check.asset, check.pay_to)
        if moved.received == 0:
            reason = (
                R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH
                if moved.any_in
                else R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH
            )
            return TxVerification(
                "invalid", payer=moved.payer, reason=reason, block=st.slot, confirmations=confirmations
            )
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

    # ------------------------------------------------------------------ lifecycle

    async def check_health(self) -> dict[str, bool]:
        """getSlot per network (any RPC URL answering counts)."""
        out: dict[str, bool] = {}
        for net, pool in self._pools.items():

            async def run(c: AsyncClient) -> Any:
                return await c.get_slot()

            try:
                await pool.call(run)
                out[net] = True
            except (ChainUnavailable, RPCException):
                out[net] = False
        return out

    async def close(self) -> None:
        """Close every RPC client."""
        for pool in self._pools.values():
            await pool.close()


@dataclass(frozen=True, slots=True)
class _Moved:
    received: int
    payer: str | None
    any_in: bool


def _received(got: Any, asset: str, pay_to: str) -> _Moved:
    """Token balance deltas of ``asset`` in a getTransaction answer: what ``pay_to`` received, and from whom."""
    meta = got.transaction.meta
    if meta is None:
        return _Moved(0, None, False)
    keys = _account_keys(got)
    try:
        owner = Pubkey.from_string(pay_to)
        mint = Pubkey.from_string(asset)
    except ValueError:
        return _Moved(0, None, False)
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
    return _Moved(received, payer, any_in)


def _account_keys(got: Any) -> list[Pubkey]:
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


def create_adapter(settings: Settings, nets: list[NetworkConfig]) -> SolanaAdapter | None:
    """Entry point: the Solana adapter for the configured ``solana:*`` networks (None when there are none)."""
    if not nets:
        return None
    keys = [parse_keypair(k) for k in settings.svm_fee_payer_keys]
    if not keys:
        log.warning("no X402_SVM_FEE_PAYER_KEYS: Solana exact payments cannot be verified or settled")
    return SolanaAdapter(nets, keys, rpc_timeout=settings.rpc_timeout)
