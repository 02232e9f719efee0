"""Resolves settlements left open by a crash or a timeout; repairs signer nonce lanes; at start-up, then on a timer."""

from __future__ import annotations

import asyncio
import time

from chains.base import ChainAdapter, Confirmation, LaneState, NonceLanes, PreparedSettlement
from chains.registry import ChainRegistry
from x402.errors import DependencyError
from x402.logs import get_logger
from x402.service.events.outbox import Event
from x402.service.facilitator.journal import Journal, JournalRow
from x402.service.facilitator.service import FacilitatorService, context_from_row
from x402.service.metrics import Metrics
from x402.wire import reasons

log = get_logger("x402.reconciler")

#: A claimed row untouched this long belongs to a request that died before signing.
CLAIM_GRACE_SECONDS = 60.0
#: An open settlement older than this is reported stuck (metric + log line with the reason).
STUCK_AFTER_SECONDS = 120.0
#: Seconds between purges of payment identifiers past their retention (run from the reconciler's loop).
PURGE_EVERY = 600.0

#: Why a settlement is still open, from what the last pass did with it.
_STUCK_REASONS = {
    "pending": "not_mined",
    "rebroadcast": "not_at_node",
    "gas_bump": "underpriced",
    "awaiting_fill": "expired_unsent",
    "signer_out_of_gas": "signer_out_of_gas",
    "nonce_used": "nonce_used",
    "error": "error",
}


def reconciled(row: JournalRow) -> list[Event]:
    """``payment.reconciled``: a settlement no request could answer finally reached confirmed or failed."""
    data = {
        "settlementId": row.id,
        "kind": "settle",
        "status": "success" if row.status == "confirmed" else row.status,
        "network": row.network,
        "asset": row.asset,
        "amount": str(row.amount),
        "payer": row.payer,
        "payTo": row.pay_to,
        "transaction": row.tx_id,
        "reason": row.error_reason,
        "resource": None,
    }
    return [Event("payment.reconciled", data, row.event_tenant)]


class Reconciler:
    """Looks at every signer lane and every open journal row: fills gaps, confirms, fails, resends or bumps."""

    def __init__(
        self,
        service: FacilitatorService,
        journal: Journal,
        registry: ChainRegistry,
        *,
        metrics: Metrics | None = None,
        stuck_after: float = STUCK_AFTER_SECONDS,
        identifier_ttl_days: float = 0.0,
    ) -> None:
        self.service = service
        self.journal = journal
        self.registry = registry
        self.metrics = metrics
        self.stuck_after = stuck_after
        self.identifier_ttl_days = identifier_ttl_days
        self._purged_at: float | None = None
        self._lanes: dict[tuple[str, str], LaneState] = {}

    async def run_once(self, *, claim_grace: float = CLAIM_GRACE_SECONDS) -> dict[str, int]:
        """One pass over the lanes, then over open rows; returns counts by what was done."""
        done: dict[str, int] = {}
        self._lanes = {}
        await self._lane_pass(done)
        stuck: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        for row in await self.journal.open_rows(claimed_older_than=claim_grace):
            try:
                action = await self._one(row)
            except DependencyError as exc:
                action = f"deferred:{exc.code}"
            except Exception:
                log.exception("reconcile_error", settlement_id=row.id)
                action = "error"
            done[action] = done.get(action, 0) + 1
            if action in ("confirmed", "failed", "expired", "abandoned", "sent", "resigned", "no_adapter"):
                continue
            oldest[row.network] = max(oldest.get(row.network, 0.0), row.age)
            if row.age >= self.stuck_after:
                reason = self._reason(row, action)
                stuck[(row.network, reason)] = stuck.get((row.network, reason), 0) + 1
                log.warning(
                    "settlement_stuck",
                    settlement_id=row.id,
                    network=row.network,
                    reason=reason,
                    age_s=round(row.age, 1),
                    tx=row.tx_id,
                    signer=row.signer,
                    signer_nonce=row.signer_nonce,
                )
        if self.metrics is not None:
            self.metrics.settlements_stuck.clear()
            for (network, reason), count in stuck.items():
                self.metrics.settlements_stuck.labels(network, reason).set(count)
            self.metrics.oldest_open_settlement.clear()
            for network, age in oldest.items():
                self.metrics.oldest_open_settlement.labels(network).set(age)
        if done:
            log.info("reconciled", **done)
        return done

    def _reason(self, row: JournalRow, action: str) -> str:
        state = self._lanes.get((row.network, row.signer or ""))
        if action == "pending" and state is not None and (row.signer_nonce or 0) > state.pending:
            return "nonce_gap"  # an earlier nonce of its signer is missing at the node
        if action.startswith("deferred:"):
            code = action.split(":", 1)[1]
            return "rpc_unavailable" if code == "chain_unavailable" else code
        return _STUCK_REASONS.get(action, action)

    async def _lane_pass(self, done: dict[str, int]) -> None:
        """Reconcile every signer lane's on-chain nonces with the journal (gaps, lost and stuck transactions)."""
        lanes = self.service.lanes
        for adapter in self.registry:
            if not isinstance(adapter, NonceLanes):
                continue
            for network in adapter.networks():
                for signer in lanes.signers(adapter, network):
                    try:
                        state, acts = await lanes.reconcile(adapter, network, signer, stuck_after=self.stuck_after)
                    except DependencyError as exc:
                        log.warning("lane_reconcile_deferred", network=network, signer=signer, error=exc.code)
                        continue
                    self._lanes[(network, signer)] = state
                    for action, count in acts.items():
                        key = f"lane_{action}"
                        done[key] = done.get(key, 0) + count

    async def _lane_state(self, adapter: NonceLanes, row: JournalRow) -> LaneState:
        key = (row.network, row.signer or "")
        state = self._lanes.get(key)
        if state is None:
            state = self._lanes[key] = await adapter.lane_state(row.network, row.signer or "")
        return state

    async def _one(self, row: JournalRow) -> str:
        adapter = self.registry.find(row.network)
        if adapter is None:
            return "no_adapter"
        ctx = context_from_row(row)
        if row.status == "claimed" or not row.tx_id:
            # never signed: send it only if it is still valid, through the normal exactly-once path
            outcome = await adapter.verify(ctx, simulate=True)
            if not outcome.is_valid:
                await self.journal.mark(
                    row.id, "failed", outcome.reason, "abandoned before broadcast; no longer valid", events=reconciled
                )
                return "abandoned"
            await self.service._execute(row.id, ctx, adapter, row.network, outcome.payer, events=reconciled)
            return "sent"
        conf = await self._confirm_any(adapter, row)
        if conf.status == "confirmed":
            await self.journal.mark(row.id, "confirmed", events=reconciled)
            return "confirmed"
        if conf.status == "failed":
            await self.journal.mark(row.id, "failed", conf.reason, conf.message, events=reconciled)
            return "failed"
        if conf.status == "unknown":
            return await self._unknown(adapter, row)
        if row.status != "pending":
            await self.journal.mark(row.id, "pending")
        return "pending"

    async def _confirm_any(self, adapter: ChainAdapter, row: JournalRow) -> Confirmation:
        """The outcome of the row's transaction, or of an earlier version of it (gas bump) that the chain took."""
        assert row.tx_id is not None
        ctx = context_from_row(row)
        conf = await adapter.confirm(ctx, row.network, row.tx_id, timeout=0)
        if conf.status in ("confirmed", "failed"):
            return conf
        for tx_id in row.replaced_tx_ids:
            earlier = await adapter.confirm(ctx, row.network, tx_id, timeout=0)
            if earlier.status in ("confirmed", "failed"):
                await self.journal.adopt_tx(row.id, tx_id)
                return earlier
        return conf

    async def _unknown(self, adapter: ChainAdapter, row: JournalRow) -> str:
        """No node knows the row's transaction: resend it while valid; once expired, its nonce must be consumed."""
        if not isinstance(adapter, NonceLanes) or row.signer_nonce is None:
            if row.raw_tx and (row.valid_until is None or row.valid_until > time.time()):
                assert row.tx_id is not None
                prepared = PreparedSettlement(
                    tx_id=row.tx_id, raw=row.raw_tx, signer=row.signer or "", signer_nonce=row.signer_nonce
                )
                await adapter.broadcast(row.network, prepared)
                return "rebroadcast"
            await self.journal.mark(
                row.id,
                "failed",
                reasons.INVALID_TRANSACTION_STATE,
                "transaction dropped and expired",
                events=reconciled,
            )
            return "expired"
        state = await self._lane_state(adapter, row)
        if row.signer_nonce < state.mined and row.valid_until is not None and state.chain_time < row.valid_until:
            # another transaction took the nonce (the key used elsewhere): still payable, so sign it again
            outcome = await adapter.verify(context_from_row(row), simulate=True)
            if not outcome.is_valid:
                await self.journal.mark(
                    row.id, "failed", outcome.reason, "its nonce was used by another transaction", events=reconciled
                )
                return "failed"
            await self.service._execute(
                row.id, context_from_row(row), adapter, row.network, outcome.payer, events=reconciled
            )
            return "resigned"
        if row.signer_nonce < state.mined:
            # something else consumed the nonce (a fill, or a settlement that reused it): this one never will land
            await self.journal.mark(
                row.id,
                "failed",
                reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_BEFORE,
                f"expired before its transaction was mined; nonce {row.signer_nonce} consumed by another transaction",
                events=reconciled,
            )
            return "expired"
        if row.raw_tx and (row.valid_until is None or state.chain_time < row.valid_until):
            return await self.service.lanes.resend_row(adapter, row)
        if row.status != "pending":
            await self.journal.mark(row.id, "pending")
        return "awaiting_fill"  # the lane pass consumes the nonce with a zero-value self-transfer

    async def loop(self, interval: float) -> None:
        """Run forever: once now, then every ``interval`` seconds."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the database may be briefly away; try again next round
                log.warning("reconcile_pass_failed", error=type(exc).__name__)
            await self.purge_identifiers()
            await asyncio.sleep(interval)

    async def purge_identifiers(self, *, now: float | None = None) -> int:
        """Forget payment identifiers past ``identifier_ttl_days`` (0: never), at most every ``PURGE_EVERY`` s."""
        now = time.monotonic() if now is None else now
        if self.identifier_ttl_days <= 0 or (self._purged_at is not None and now - self._purged_at < PURGE_EVERY):
            return 0
        try:
            n = await self.service.identifiers.purge(self.identifier_ttl_days)
        except Exception as exc:  # retried next round; a missed purge only keeps rows a little longer
            log.warning("payment_identifier_purge_failed", error=type(exc).__name__)
            return 0
        self._purged_at = now
        if n:
            log.info("payment_identifiers_purged", count=n)
        return n
