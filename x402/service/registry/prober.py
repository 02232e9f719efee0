"""Periodic probes: every resource (HTTP, not served by this service) is probed about once per interval.

Each node claims due rows with ``FOR UPDATE SKIP LOCKED``, so several processes share the work without probing
the same resource twice. A probe updates status (up/down + reason) and uptime (probes ok / total); a resource
whose 402 stopped being valid also loses its verification.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Final

from x402.logs import get_logger
from x402.service.registry.outbound import Outbound
from x402.service.registry.probe import DOWN_REASONS, probe
from x402.service.registry.store import RegistryStore, Verification

log = get_logger("x402.service.registry.prober")

BATCH: Final = 50
CONCURRENCY: Final = 8


async def probe_due(store: RegistryStore, outbound: Outbound, every: float, batch: int = BATCH) -> int:
    """Probe one batch of due resources; returns how many were probed."""
    due = await store.claim_due(every, batch)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(resource_id: uuid.UUID, url: str, method: str, verified: bool) -> None:
        async with gate:
            result = await probe(outbound, url, method)
        await store.record_probe(resource_id, result.up, result.reason)
        if verified and result.reason is not None and result.reason not in DOWN_REASONS:
            lost = Verification("failed", result.reason, {"probe": result.evidence()})
            await store.set_verification(resource_id, lost)

    await asyncio.gather(*(one(r.id, r.url, r.method, r.verification_status == "verified") for r in due))
    return len(due)


async def probe_loop(store: RegistryStore, outbound: Outbound, every: float) -> None:
    """Probe forever: a batch, then a pause (short while batches come back full)."""
    while True:
        try:
            n = await probe_due(store, outbound, every)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a database hiccup must not end the loop
            log.warning("probe_batch_failed", error=type(exc).__name__)
            n = 0
        await asyncio.sleep(1.0 if n >= BATCH else min(every, 30.0))
