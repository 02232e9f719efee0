"""Wiring: build the engine for a service process from its settings, Postgres pool and cache."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from risk.engine import RiskEngine
from risk.history import MemoryPayerHistory, PayerHistory, PayerHistoryRule, PgPayerHistory
from risk.model import RiskRule
from risk.rules import AddressListRule, LargeAmountRule, load_shipped_lists
from risk.sanctions import SanctionsRule, load_sanctions
from risk.screening import ChainalysisScreening, ScreeningProvider, ScreeningRule
from risk.stats import AnomalyRule, MemoryStats, RedisStats, StatsStore
from risk.store import AuditHook, MemoryRiskStore, PgRiskStore, RiskStore
from risk.velocity import MemoryVelocity, RedisVelocity, VelocityRule, VelocityStore
from x402.cache import Cache, RedisCache


@dataclass(frozen=True, slots=True)
class RiskOptions:
    """Risk-stage knobs, built once by the service from its settings and passed down (risk/ reads no environment)."""

    data_dir: Path | None = None
    rule_timeout: float = 0.25
    config_ttl: float = 5.0
    chainalysis_api_key: str | None = field(default=None, repr=False)


async def build_engine(
    options: RiskOptions,
    pool: asyncpg.Pool | None,
    cache: Cache | None,
    *,
    store: RiskStore | None = None,
    screening: ScreeningProvider | None = None,
    audit_hook: AuditHook | None = None,
) -> RiskEngine:
    """The engine with Redis-backed velocity/baselines when the cache is Redis, in-process ones otherwise."""
    rs = options
    # package data and the operator's list file are read once, off the event loop
    sanctions = await asyncio.to_thread(load_sanctions, rs.data_dir)
    shipped, shipped_version = await asyncio.to_thread(load_shipped_lists)
    if store is None:
        store = PgRiskStore(pool, audit_hook=audit_hook) if pool is not None else MemoryRiskStore()
    velocity: VelocityStore
    stats: StatsStore
    if isinstance(cache, RedisCache):
        velocity, stats = RedisVelocity(cache.client), RedisStats(cache.client)
    else:
        velocity, stats = MemoryVelocity(), MemoryStats()
    history: PayerHistory = PgPayerHistory(pool) if pool is not None else MemoryPayerHistory()
    rules: list[RiskRule] = [
        SanctionsRule(sanctions),
        AddressListRule(store, shipped),
        VelocityRule(velocity),
        PayerHistoryRule(history),
        AnomalyRule(stats),
        LargeAmountRule(),
    ]
    closers = []
    if screening is None and rs.chainalysis_api_key:
        screening = ChainalysisScreening(rs.chainalysis_api_key)
    if screening is not None:
        rules.append(ScreeningRule(screening))
        closers.append(screening)
    versions = {"sdn": sanctions.version, "addressLists": shipped_version}
    if screening is not None:
        versions["screening"] = screening.name
    return RiskEngine(
        rules,
        store=store,
        stats=stats,
        history=history,
        list_versions=versions,
        rule_timeout=rs.rule_timeout,
        config_ttl=rs.config_ttl,
        closers=closers,
    )
