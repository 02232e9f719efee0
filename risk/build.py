"""Wiring: build the engine for a service process from its settings, Postgres pool and cache."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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
from x402.errors import ConfigError


class ServiceSettings(Protocol):
    """The service settings the risk stage reads (the service's ``Settings`` has them)."""

    @property
    def data_dir(self) -> Path:
        """Where the operator's sanctions list snapshot lives."""
        ...


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """Risk-stage knobs (read once at start-up, like Settings)."""

    enabled: bool = True
    rule_timeout: float = 0.25
    config_ttl: float = 5.0
    chainalysis_api_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RiskSettings:
        """From ``X402_RISK_ENABLED``, ``_RULE_TIMEOUT_MS``, ``_CONFIG_TTL``, ``_CHAINALYSIS_KEY``."""
        env = os.environ if env is None else env
        try:
            timeout_ms = float(env.get("X402_RISK_RULE_TIMEOUT_MS") or 250)
            ttl = float(env.get("X402_RISK_CONFIG_TTL") or 5)
        except ValueError as exc:
            raise ConfigError(f"risk settings: {exc}") from exc
        return cls(
            enabled=(env.get("X402_RISK_ENABLED") or "true").strip().lower() not in {"0", "false", "no", "off"},
            rule_timeout=timeout_ms / 1000,
            config_ttl=ttl,
            chainalysis_api_key=env.get("X402_RISK_CHAINALYSIS_KEY") or None,
        )


async def build_engine(
    settings: ServiceSettings,
    pool: asyncpg.Pool | None,
    cache: Cache | None,
    *,
    risk_settings: RiskSettings | None = None,
    store: RiskStore | None = None,
    screening: ScreeningProvider | None = None,
    audit_hook: AuditHook | None = None,
) -> RiskEngine:
    """The engine with Redis-backed velocity/baselines when the cache is Redis, in-process ones otherwise."""
    rs = risk_settings or RiskSettings.from_env()
    # package data and the operator's list file are read once, off the event loop
    sanctions = await asyncio.to_thread(load_sanctions, settings.data_dir)
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
