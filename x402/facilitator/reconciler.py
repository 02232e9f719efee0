"""Resolves settlements left open by a crash or a timeout: at start-up and then periodically."""

from __future__ import annotations

import asyncio
import time

from chains.registry import ChainRegistry
from x402.errors import DependencyError
from x402.facilitator.journal import Journal, JournalRow
from x402.facilitator.service import FacilitatorService, context_from_row
from x402.logs import get_logger
from x402.wire import reasons

log = get_logger("x402.reconciler")

#: A claimed row untouched this long belongs to a request that died before signing.
CLAIM_GRACE_SECONDS = 60.0


class Reconciler:
    """Looks at every open journal row: confirms, fails, resends the recorded transaction, or finishes it."""

    def __init__(self, service: FacilitatorService, journal: Journal, registry: ChainRegistry) -> None:
        self.service = service
        self.journal = journal
        self.registry = registry

    async def run_once(self, *, claim_grace: float = CLAIM_GRACE_SECONDS) -> dict[str, int]:
        """One pass over open rows; returns counts by what was done."""
        done: dict[str, int] = {}
        for row in await self.journal.open_rows(claimed_older_than=claim_grace):
            try:
                action = await self._one(row)
            except DependencyError as exc:
                action = f"deferred:{exc.code}"
            except Exception:
                log.exception("reconcile_error", payment_id=row.id)
                action = "error"
            done[action] = done.get(action, 0) + 1
        if done:
            log.info("reconciled", **done)
        return done

    async def _one(self, row: JournalRow) -> str:
        adapter = self.registry.find(row.network)
        if adapter is None:
            return "no_adapter"
        ctx = context_from_row(row)
        if row.status == "claimed" or not row.tx_id:
            # never signed: send it only if it is still valid, through the normal exactly-once path
            outcome = await adapter.verify(ctx, simulate=True)
            if not outcome.is_valid:
                await self.journal.mark(row.id, "failed", outcome.reason, "abandoned before broadcast; no longer valid")
                return "abandoned"
            await self.service._execute(row.id, ctx, adapter, row.network, outcome.payer)
            return "sent"
        conf = await adapter.confirm(ctx, row.network, row.tx_id, timeout=0)
        if conf.status == "confirmed":
            await self.journal.mark(row.id, "confirmed")
            return "confirmed"
        if conf.status == "failed":
            await self.journal.mark(row.id, "failed", conf.reason, conf.message)
            return "failed"
        if conf.status == "unknown":
            if row.raw_tx and (row.valid_until is None or row.valid_until > time.time()):
                from chains.base import PreparedSettlement

                prepared = PreparedSettlement(
                    tx_id=row.tx_id, raw=row.raw_tx, signer=row.signer or "", signer_nonce=row.signer_nonce
                )
                await adapter.broadcast(row.network, prepared)
                return "rebroadcast"
            await self.journal.mark(
                row.id, "failed", reasons.INVALID_TRANSACTION_STATE, "transaction dropped and expired"
            )
            return "expired"
        if row.status != "pending":
            await self.journal.mark(row.id, "pending")
        return "pending"

    async def loop(self, interval: float) -> None:
        """Run forever: once now, then every ``interval`` seconds."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the database may be briefly away; try again next round
                log.warning("reconcile_pass_failed", error=type(exc).__name__)
            await asyncio.sleep(interval)
