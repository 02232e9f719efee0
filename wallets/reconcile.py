"""Resolves pending wallet payments from the chain: settled -> committed, void (can never settle) -> released."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from chains.base import PaymentStatus, PaymentStatusSource
from chains.registry import ChainRegistry
from wallets.ledger import Ledger
from x402.errors import X402Error
from x402.logs import get_logger
from x402.wire.models import PaymentRequirements

log = get_logger("wallets.reconcile")


def chain_lookup(chains: ChainRegistry | None) -> Any:
    """A ``StatusLookup`` over the configured chain adapters."""

    async def lookup(proof: Mapping[str, Any]) -> PaymentStatus | None:
        requirements = msgspec.convert(proof["accepted"], PaymentRequirements)
        adapter = chains.find(requirements.network) if chains is not None else None
        if not isinstance(adapter, PaymentStatusSource):
            return None
        return await adapter.payment_status(requirements.network, proof["payload"], requirements)

    return lookup


@dataclass
class Pass:
    """What one reconciler pass did."""

    committed: int = 0
    released: int = 0
    pending: int = 0
    errors: int = 0


async def reconcile_once(ledger: Ledger, lookup: Any, limit: int = 50) -> Pass:
    """Ask the chain about up to ``limit`` pending payments and resolve those it has decided."""
    done = Pass()
    for row in await ledger.due_pending(limit):
        try:
            status: PaymentStatus | None = await lookup(_proof(row))
        except (X402Error, OSError, TimeoutError, KeyError, ValueError, msgspec.ValidationError) as exc:
            done.errors += 1
            log.warning("pending_check_failed", payment_id=str(row["id"]), error=type(exc).__name__)
            continue
        if status is None or status.state == "pending":
            done.pending += 1
            continue
        settled = status.state == "settled"
        reason = status.message or ("settled on-chain" if settled else "never settled")
        if await ledger.resolve(row["id"], settled=settled, tx=status.transaction, reason=reason):
            if settled:
                done.committed += 1
            else:
                done.released += 1
            log.info(
                "pending_payment_resolved",
                payment_id=str(row["id"]),
                resolution="committed" if settled else "released",
                transaction=status.transaction,
            )
    return done


def _proof(row: asyncpg.Record) -> dict[str, Any]:
    proof = row["proof"]
    doc = json.loads(proof) if isinstance(proof, str) else proof
    if not isinstance(doc, dict):
        raise ValueError("the pending payment has no proof")
    return doc
