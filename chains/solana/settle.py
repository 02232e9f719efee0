"""Solana ``exact`` settlement: replay key, co-sign after a last simulation, send, confirm (architecture.md §5.4)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.pubkey import Pubkey
from solders.signature import Signature

from chains.base import Confirmation, PaymentContext, PreparedSettlement, ReplayKey, SettlementRejected
from chains.solana.outcome import inner_transfers, matching, top_level_transfers
from chains.solana.rpc import SolanaRpcPool, pool_for
from chains.solana.status import DONE, received
from chains.solana.verify import Invalid, SolanaVerifier, decode_transaction, payer_hint
from x402.errors import BadRequest, ChainRejected
from x402.wire import reasons as R

#: Backstop for the reconciler's re-broadcast window (unix time); a blockhash lives 150 blocks (~60-90 s) but
#: block height stalls while the cluster does. ``confirm(ctx, ...)`` detects expiry from the chain itself.
TX_LIFETIME_SECONDS: Final = 600


class SolanaSettler:
    """Settles verified payments: the fee payer co-signs, sends with preflight and polls the signature status."""

    def __init__(self, verifier: SolanaVerifier, pools: Mapping[str, SolanaRpcPool], *, poll_interval: float) -> None:
        self.verifier = verifier
        self._pools = pools
        self.poll_interval = poll_interval

    def replay_key(self, ctx: PaymentContext) -> ReplayKey:
        """Network, mint, transfer authority and the message hash: one transaction settles once."""
        try:
            dec = decode_transaction(ctx.payload)
        except ValueError as exc:
            raise BadRequest(str(exc), code=R.INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED) from None
        return ReplayKey(ctx.requirements.network, ctx.requirements.asset, payer_hint(dec), str(dec.tx.message.hash()))

    async def prepare_settlement(
        self, ctx: PaymentContext, *, nonce_floor: int | None = None, signer: str | None = None
    ) -> PreparedSettlement:
        """Re-check, co-sign as the fee payer and simulate; raises SettlementRejected when it would fail.

        ``tx_id`` is the fee payer's signature (deterministic for a given message), ``valid_until`` unix time.
        """
        try:
            checked = await self.verifier.check(ctx)
            await self.verifier.simulate(ctx, checked, already_processed_ok=True)
        except Invalid as inv:
            o = inv.outcome
            raise SettlementRejected(o.reason or R.INVALID_EXACT_SVM_VERIFICATION_FAILED, o.message, o.payer) from None
        dec = checked.dec
        tx = self.verifier.cosign(ctx, dec)
        return PreparedSettlement(
            tx_id=str(tx.signatures[0]),
            raw=bytes(tx),
            signer=str(dec.keys[0]),
            valid_until=int(time.time()) + TX_LIFETIME_SECONDS,
        )

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """sendTransaction with preflight; an already processed transaction is fine, other refusals raise 502."""
        pool = pool_for(self._pools, network)
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

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, *, timeout: float) -> Confirmation:
        """Poll getSignatureStatuses until confirmed/finalized, failed or ``timeout``.

        Not seen by then: ``unknown`` (or ``failed`` when ``ctx`` shows its blockhash expired, so it can never
        land); seen but only processed: ``pending``.
        """
        pool = pool_for(self._pools, network)
        try:
            sig = Signature.from_string(tx_id)
        except ValueError:
            return Confirmation("failed", R.INVALID_EXACT_SVM_TRANSACTION_FAILED, "not a Solana signature")
        deadline = time.monotonic() + max(timeout, 0.0)
        seen = False
        while True:
            st = await pool.signature_status(sig)
            if st is not None:
                seen = True
                if st.err is not None:
                    return Confirmation("failed", R.INVALID_EXACT_SVM_TRANSACTION_FAILED, str(st.err), block=st.slot)
                if st.confirmation_status in DONE:
                    return await self._confirmed(ctx, pool, sig, st.slot)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self.poll_interval, remaining))
        if seen:
            return Confirmation("pending")
        if ctx is not None:
            try:
                blockhash = decode_transaction(ctx.payload).tx.message.recent_blockhash
            except ValueError:
                return Confirmation("unknown")
            if not await pool.blockhash_valid(blockhash):
                if await pool.signature_status(sig) is None:  # it may have landed just before expiring
                    return Confirmation(
                        "failed",
                        R.INVALID_EXACT_SVM_TRANSACTION_FAILED,
                        "blockhash expired before the transaction landed",
                    )
                return Confirmation("pending")
        return Confirmation("unknown")

    async def _confirmed(
        self, ctx: PaymentContext | None, pool: SolanaRpcPool, sig: Signature, slot: int
    ) -> Confirmation:
        if ctx is None:
            return Confirmation("confirmed", block=slot)
        got = await pool.transaction(sig)
        if got is None:
            return Confirmation("confirmed", block=slot)
        req = ctx.requirements
        keys = self._keys_of(ctx, got)
        moved = received(got, req.asset, req.pay_to, keys)
        if moved.received < int(req.amount):
            return Confirmation(
                "failed",
                R.POST_SETTLEMENT_TRANSFER_NOT_CONFIRMED,
                f"payTo received {moved.received}, expected {req.amount}",
                amount=moved.received,
                block=slot,
            )
        if not self._transfer_landed(ctx, got, keys):
            return Confirmation(
                "failed",
                R.POST_SETTLEMENT_TRANSFER_NOT_CONFIRMED,
                "the confirmed transaction performs no transfer that pays the requirement",
                amount=moved.received,
                block=slot,
            )
        return Confirmation("confirmed", amount=moved.received, block=slot)

    @staticmethod
    def _keys_of(ctx: PaymentContext, got: Any) -> list[Pubkey]:
        """The settled transaction's static keys (from the payload: the same message) plus its loaded addresses."""
        meta = got.transaction.meta
        loaded = meta.loaded_addresses if meta is not None else None
        extra = list(loaded.writable) + list(loaded.readonly) if loaded is not None else []
        return decode_transaction(ctx.payload).keys + extra

    def _transfer_landed(self, ctx: PaymentContext, got: Any, keys: list[Pubkey]) -> bool:
        """The confirmed transaction's top-level and inner instructions hold a transfer that pays the requirement.

        True when the node reports no inner instructions (the balance delta above is then the only check).
        """
        meta = got.transaction.meta
        if meta is None or meta.inner_instructions is None:
            return True
        dec = decode_transaction(ctx.payload)
        transfers = top_level_transfers(keys, dec.tx.message.instructions) + inner_transfers(
            meta.inner_instructions, keys
        )
        req = ctx.requirements
        try:
            return bool(matching(transfers, req.asset, req.pay_to, int(req.amount)))
        except ValueError:
            return False
