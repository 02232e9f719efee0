"""Shared builders for the risk tests."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from risk.build import RiskOptions, build_engine
from risk.engine import RiskEngine
from risk.model import RiskContext
from risk.store import MemoryRiskStore
from x402.cache import Cache

LAZARUS = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"  # SDN since 2022-04-14 (Ronin bridge)
SANCTIONED_SOL = "42RLPACwZPx3vYYmxSueqsogfynBDqXK298EDsNoyoHi"
PAYER = "0x857b06519E91e3A54538791bDbb0E22373e36b66"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
_ids = itertools.count()


def ctx(**kw: Any) -> RiskContext:
    """A plain EVM payment of 0.01 USDC on Base, overridable field by field."""
    base: dict[str, Any] = {
        "network": "eip155:8453",
        "asset": USDC_BASE,
        "payer": PAYER,
        "pay_to": PAY_TO,
        "amount": 10_000,
        "resource": "https://api.example.com/weather",
        "payment_id": f"p{next(_ids)}",
    }
    base.update(kw)
    return RiskContext(**base)


async def memory_engine(
    tmp_path: Path, config: dict[str, Any] | None = None, cache: Cache | None = None, **kw: Any
) -> tuple[RiskEngine, MemoryRiskStore]:
    """An engine without Postgres (memory store), Redis only when ``cache`` is one."""
    store = MemoryRiskStore()
    if config is not None:
        await store.put_config(None, config, actor="test")
    engine = await build_engine(RiskOptions(data_dir=tmp_path, config_ttl=0.0, **kw), None, cache, store=store)
    return engine, store
