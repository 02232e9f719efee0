"""Signer nonce lanes: round-robin signers, and no reserved nonce ever left unused on chain.

Each (network, signer) is a lane with its own lock, held only to take a nonce, sign and journal: a settlement's RPC
work (gas estimate, fees, funds) is drafted before it, its broadcast and receipt wait happen after it, so the
settlements of one signer are pipelined. A settlement takes the lowest nonce the node holds no
transaction for and no open journal entry holds; the nonce of a settlement that can no longer succeed (its
authorization expired by chain time and no node knows its transaction) is reused. The reconciler's lane pass fills
what is left with zero-value self-transfers, resends journalled transactions the node lost, and re-signs stuck or
underpriced ones with higher fees. Every replacement and fill is journalled before it is broadcast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from chains.base import (
    ChainAdapter,
    DraftsSettlements,
    LaneState,
    NonceLanes,
    NonceTooLow,
    PaymentContext,
    PreparedSettlement,
    SignerOutOfGas,
    Underpriced,
)
from x402.errors import DependencyError
from x402.logs import get_logger
from x402.service.facilitator.journal import Conn, Held, Journal, JournalRow
from x402.service.metrics import Metrics
from x402.wire import reasons
from x402.wire.networks import matches

log = get_logger("x402.lanes")

#: Gap nonces repaired per lane and pass (bounds the work one pass does).
MAX_REPAIRS = 64
#: Prepare/broadcast rounds for one settlement (nonce taken meanwhile, fees refused).
SEND_ATTEMPTS = 3
NO_SIGNER = "none"
#: A journalled transaction younger than this is on its way to the node from a live request: not resent.
IN_FLIGHT_GRACE = 2.0
#: A signer found out of gas is passed over this long while another one can settle.
OUT_OF_GAS_COOLDOWN = 30.0


class SignerLanes:
    """Picks a signer lane per settlement and keeps every lane free of nonce gaps."""

    def __init__(self, journal: Journal, metrics: Metrics | None = None, *, signer_wait: float | None = None) -> None:
        self.journal = journal
        self.metrics = metrics
        #: longest a settlement waits for its signer's lane before ``SignerBusy`` (None: no bound)
        self.signer_wait = signer_wait
        self._turn: dict[str, int] = {}
        self._broke: dict[tuple[str, str], float] = {}

    # -- signers ---------------------------------------------------------------------------------------------

    @staticmethod
    def signers(adapter: ChainAdapter, network: str) -> list[str]:
        """The adapter's signer addresses serving ``network``."""
        for pattern, addrs in adapter.signers().items():
            if addrs and matches(pattern, network):
                return list(addrs)
        return []

    def pick(self, adapter: ChainAdapter, network: str, skip: Iterable[str] = ()) -> str:
        """The next signer of ``network`` in round-robin order, leaving out ``skip``; "none" when none is left."""
        skipped = set(skip)
        options = [s for s in self.signers(adapter, network) if s not in skipped]
        if not options:
            return NO_SIGNER
        now = time.monotonic()
        funded = [s for s in options if self._broke.get((network, s), 0.0) <= now]
        options = funded or options  # when every signer looks broke, try them anyway (one may have been topped up)
        turn = self._turn.get(network, 0)
        self._turn[network] = turn + 1
        return options[turn % len(options)]

    def any_left(self, adapter: ChainAdapter, network: str, skip: Iterable[str]) -> bool:
        """True when a signer of ``network`` is not in ``skip``."""
        skipped = set(skip)
        return any(s not in skipped for s in self.signers(adapter, network))

    def out_of_gas(self, network: str, signer: str) -> None:
        """Count and log a signer that cannot pay gas; round-robin passes it over for a while."""
        log.error("signer_out_of_gas", network=network, signer=signer)
        self._broke[(network, signer)] = time.monotonic() + OUT_OF_GAS_COOLDOWN
        if self.metrics is not None:
            self.metrics.signer_out_of_gas.labels(network, signer).inc()

    def _count(self, network: str, action: str) -> None:
        if self.metrics is not None:
            self.metrics.nonce_repairs.labels(network, action).inc()

    # -- settlement path -------------------------------------------------------------------------------------

    async def reserve(self, row_id: int, ctx: PaymentContext, adapter: ChainAdapter, signer: str) -> PreparedSettlement:
        """Pick the nonce, sign, and journal the transaction (committed before any broadcast), under the lane lock.

        An adapter that drafts settlements does the RPC work (gas estimate, fees, funds) before the lock; under
        it only the nonce is taken, the draft signed at it and the row journalled, so settlements of one signer
        are serialised for a few milliseconds each while their broadcasts and receipt waits overlap.
        """
        network = ctx.network
        draft = None
        if isinstance(adapter, DraftsSettlements) and signer != NO_SIGNER:
            draft = await adapter.draft_settlement(ctx, signer)
        async with self.journal.signer_slot(network, signer, wait=self.signer_wait) as conn:
            nonce: int | None
            if isinstance(adapter, NonceLanes) and signer != NO_SIGNER:
                nonce = await self._free_nonce(conn, adapter, network, signer, row_id)
            else:
                nonce = await Journal.next_nonce(conn, network, signer)
            if draft is not None and nonce is not None:
                prepared = draft.sign(nonce)
            else:
                prepared = await adapter.prepare_settlement(
                    ctx, nonce_floor=nonce, signer=None if signer == NO_SIGNER else signer
                )
            await Journal.mark_submitted(conn, row_id, prepared)
        return prepared

    async def send(
        self, row_id: int, ctx: PaymentContext, adapter: ChainAdapter, prepared: PreparedSettlement
    ) -> PreparedSettlement:
        """Broadcast; a nonce taken meanwhile is signed again, refused fees are bumped (journalled first)."""
        for attempt in range(SEND_ATTEMPTS):
            try:
                await adapter.broadcast(ctx.network, prepared)
                return prepared
            except NonceTooLow:
                if attempt == SEND_ATTEMPTS - 1:
                    raise
                # something else used the nonce: the old transaction can never land, sign again
                prepared = await self.reserve(row_id, ctx, adapter, prepared.signer)
            except Underpriced:
                if attempt == SEND_ATTEMPTS - 1 or not isinstance(adapter, NonceLanes):
                    raise
                prepared = await self._bump_settlement(adapter, ctx.network, row_id, prepared)
        return prepared

    async def _bump_settlement(
        self, adapter: NonceLanes, network: str, row_id: int, prepared: PreparedSettlement
    ) -> PreparedSettlement:
        bumped = await adapter.prepare_bump(network, prepared.raw)
        await Journal.record_replacement(self.journal.pool, row_id, bumped)
        self._count(network, "gas_bump")
        log.info(
            "settle_gas_bump", settlement_id=row_id, old=prepared.tx_id, tx=bumped.tx_id, nonce=bumped.signer_nonce
        )
        return PreparedSettlement(
            bumped.tx_id, bumped.raw, bumped.signer, bumped.signer_nonce, valid_until=prepared.valid_until
        )

    async def _free_nonce(self, conn: Conn, adapter: NonceLanes, network: str, signer: str, row_id: int) -> int:
        """The lowest nonce neither at the node nor held by a live journal entry (a dead settlement's is reused)."""
        # the node and the journal are asked at once (open rows of a lane are few: those in flight)
        state, open_rows = await asyncio.gather(
            adapter.lane_state(network, signer), Journal.held(conn, network, signer, 0)
        )
        held = {n: h for n, h in open_rows.items() if n >= state.mined}
        nonce = state.pending
        while nonce in held:
            h = held[nonce]
            if h.kind == "settlement" and h.id == row_id:
                return nonce
            if await self._dead(adapter, network, h, state):
                await Journal.release(
                    conn,
                    h.id,
                    reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_BEFORE,
                    f"expired before its transaction reached the chain; nonce {nonce} reused by settlement {row_id}",
                )
                self._count(network, "reuse")
                log.warning(
                    "nonce_reused", network=network, signer=signer, nonce=nonce, dead=h.id, settlement_id=row_id
                )
                return nonce
            if h.sent_age >= IN_FLIGHT_GRACE and not await self._known(adapter, network, h):
                await self._resend(adapter, network, signer, h)  # lost by the node (or never sent): fill the gap
            nonce += 1
        return nonce

    # -- repairs ---------------------------------------------------------------------------------------------

    @staticmethod
    async def _known(adapter: NonceLanes, network: str, h: Held) -> bool:
        for tx_id in (h.tx_id, *h.replaced_tx_ids):
            if await adapter.tx_known(network, tx_id):
                return True
        return False

    async def _dead(self, adapter: NonceLanes, network: str, h: Held, state: LaneState) -> bool:
        """A settlement that can never succeed: expired by chain time and no node knows any of its transactions."""
        if h.kind != "settlement" or h.valid_until is None or state.chain_time < h.valid_until:
            return False
        return not await self._known(adapter, network, h)

    async def _resend(self, adapter: NonceLanes, network: str, signer: str, h: Held) -> str:
        """Hand a journalled transaction to the node again; bump its fees when they are refused."""
        prepared = PreparedSettlement(h.tx_id, h.raw, signer, h.nonce)
        try:
            try:
                await adapter.broadcast(network, prepared)
                self._count(network, "rebroadcast")
                return "rebroadcast"
            except Underpriced:
                return await self._bump(adapter, network, signer, h)
        except SignerOutOfGas:
            self.out_of_gas(network, signer)
            return "signer_out_of_gas"
        except NonceTooLow:
            return "nonce_used"
        except DependencyError as exc:
            log.warning("lane_resend_failed", network=network, nonce=h.nonce, error=exc.code)
            return f"deferred:{exc.code}"

    async def _bump(self, adapter: NonceLanes, network: str, signer: str, h: Held) -> str:
        """Re-sign a held transaction with higher fees (a fill for a dead settlement), journal it, broadcast it."""
        if h.kind == "fill":
            bumped = await adapter.prepare_bump(network, h.raw)
            await Journal.replace_fill(self.journal.pool, h.id, bumped)
        elif h.valid_until is not None and (await adapter.lane_state(network, signer)).chain_time >= h.valid_until:
            # expired: the cheapest replacement that consumes the nonce is a fill
            return await self._fill(adapter, network, signer, h.nonce, h.id, above=h.raw)
        else:
            bumped = await adapter.prepare_bump(network, h.raw)
            await Journal.record_replacement(self.journal.pool, h.id, bumped)
        log.info("lane_gas_bump", network=network, nonce=h.nonce, old=h.tx_id, tx=bumped.tx_id, kind=h.kind)
        await adapter.broadcast(network, bumped)
        self._count(network, "gas_bump")
        return "gas_bump"

    async def _fill(
        self,
        adapter: NonceLanes,
        network: str,
        signer: str,
        nonce: int,
        settlement_id: int | None,
        *,
        above: bytes | None = None,
    ) -> str:
        """Consume ``nonce`` with a zero-value self-transfer, journalled before it is broadcast."""
        try:
            prepared = await adapter.prepare_fill(network, signer, nonce, above=above)
            await Journal.add_fill(self.journal.pool, network, signer, nonce, settlement_id, prepared)
            log.warning(
                "nonce_fill", network=network, signer=signer, nonce=nonce, tx=prepared.tx_id, dead=settlement_id
            )
            await adapter.broadcast(network, prepared)
        except SignerOutOfGas:
            self.out_of_gas(network, signer)
            return "signer_out_of_gas"
        except NonceTooLow:
            return "nonce_used"
        except DependencyError as exc:
            log.warning("nonce_fill_failed", network=network, nonce=nonce, error=exc.code)
            return f"deferred:{exc.code}"
        self._count(network, "fill")
        return "fill"

    # -- reconciler pass -------------------------------------------------------------------------------------

    async def reconcile(
        self, adapter: NonceLanes, network: str, signer: str, *, stuck_after: float
    ) -> tuple[LaneState, dict[str, int]]:
        """One pass over a lane: close consumed fills, fill or resend every gap, bump transactions stuck at the node."""
        done: dict[str, int] = {}
        async with self.journal.signer_slot(network, signer) as conn:
            state = await adapter.lane_state(network, signer)
            for fill in await Journal.open_fills(conn, network, signer):
                if fill.nonce >= state.mined:
                    continue
                mined_tx = None
                for tx_id in (fill.tx_id, *fill.replaced_tx_ids):
                    if (await adapter.confirm(None, network, tx_id, timeout=0)).status in ("confirmed", "failed"):
                        mined_tx = tx_id
                        break
                await Journal.close_fill(self.journal.pool, fill.id, "confirmed" if mined_tx else "consumed", mined_tx)
            held = await Journal.held(conn, network, signer, state.mined)
            top = max(held, default=state.pending - 1)
            if self.metrics is not None:
                gauge = self.metrics.signer_nonce
                gauge.labels(network, signer, "mined").set(state.mined)
                gauge.labels(network, signer, "pending").set(state.pending)
                gauge.labels(network, signer, "journal").set(max(top + 1, state.mined))
            for nonce in range(state.mined, min(top, state.mined + MAX_REPAIRS) + 1):
                h = held.get(nonce)
                action: str | None = None
                if nonce < state.pending:  # the node holds a transaction at this nonce
                    if h is not None and h.sent_age >= stuck_after and await self._known(adapter, network, h):
                        action = await self._guarded_bump(adapter, network, signer, h)
                elif h is None:
                    action = await self._fill(adapter, network, signer, nonce, None)
                elif await self._dead(adapter, network, h, state):
                    action = await self._fill(adapter, network, signer, nonce, h.id)
                elif h.sent_age >= IN_FLIGHT_GRACE and not await self._known(adapter, network, h):
                    action = await self._resend(adapter, network, signer, h)
                if action is not None:
                    done[action] = done.get(action, 0) + 1
        return state, done

    async def _guarded_bump(self, adapter: NonceLanes, network: str, signer: str, h: Held) -> str:
        try:
            return await self._bump(adapter, network, signer, h)
        except SignerOutOfGas as exc:
            self.out_of_gas(network, exc.signer)
            return "signer_out_of_gas"
        except DependencyError as exc:
            return f"deferred:{exc.code}"

    async def resend_row(self, adapter: NonceLanes, row: JournalRow) -> str:
        """The reconciler found a settlement's transaction unknown to the node while still valid: send it again."""
        if row.tx_id is None or row.raw_tx is None or row.signer_nonce is None:
            return "not_signed"
        h = Held(
            "settlement", row.id, row.signer_nonce, row.tx_id, row.raw_tx, row.replaced_tx_ids, row.valid_until, 0.0
        )
        return await self._resend(adapter, row.network, row.signer or "", h)
