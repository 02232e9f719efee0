"""Amount baselines per payTo and per resource, kept incrementally (Welford), and the 3-sigma anomaly rule.

Baselines learn from settled payments only (``RiskEngine.record``), so refused or abandoned payments do not
shift them. Statistics are floats: they describe amounts, they never move money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

from risk.addresses import normalize_address
from risk.model import Flag, RiskContext
from x402.errors import DependencyError

_STATS_TTL = 90 * 24 * 3600

_UPDATE = """
local x = tonumber(ARGV[1])
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'n', 'mean', 'm2')
  local n = tonumber(v[1] or '0')
  local mean = tonumber(v[2] or '0')
  local m2 = tonumber(v[3] or '0')
  n = n + 1
  local delta = x - mean
  mean = mean + delta / n
  m2 = m2 + delta * (x - mean)
  redis.call('HSET', KEYS[i], 'n', n, 'mean', string.format('%.17g', mean), 'm2', string.format('%.17g', m2))
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2]))
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Baseline:
    """Running count, mean and sum of squared deviations of the amounts seen for one key."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @property
    def std(self) -> float:
        """Sample standard deviation (0 below two samples)."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0

    def add(self, x: float) -> Baseline:
        """Welford's update with one more sample."""
        n = self.n + 1
        delta = x - self.mean
        mean = self.mean + delta / n
        return Baseline(n, mean, self.m2 + delta * (x - mean))


def baseline_keys(ctx: RiskContext) -> list[str]:
    """The baselines a payment belongs to: its payTo (per network and asset) and its resource (without query)."""
    keys = [f"payto:{ctx.network}:{normalize_address(ctx.asset)}:{normalize_address(ctx.pay_to)}"]
    if ctx.resource:
        keys.append(f"resource:{ctx.network}:{_resource_key(ctx.resource)}")
    return keys


@lru_cache(maxsize=4096)
def _resource_key(resource: str) -> str:
    """``netloc + path`` of a resource URL (memoised: a service is paid for the same few URLs over and over)."""
    parts = urlsplit(resource)
    return f"{parts.netloc}{parts.path}"


class StatsStore(Protocol):
    """Baselines by key."""

    async def get(self, keys: list[str]) -> list[Baseline]:
        """Current baselines, one per key (empty ones for unknown keys)."""
        ...

    async def add(self, keys: list[str], amount: int) -> None:
        """Fold one settled amount into each key's baseline."""
        ...


class MemoryStats:
    """In-process baselines."""

    def __init__(self) -> None:
        self.data: dict[str, Baseline] = {}

    async def get(self, keys: list[str]) -> list[Baseline]:
        """Current baselines."""
        return [self.data.get(k, Baseline()) for k in keys]

    async def add(self, keys: list[str], amount: int) -> None:
        """Welford update."""
        for k in keys:
            self.data[k] = self.data.get(k, Baseline()).add(float(amount))


class RedisStats:
    """Baselines in Redis hashes, updated atomically by a Lua script (processes update concurrently)."""

    def __init__(self, client: Redis, *, prefix: str = "risk:s") -> None:
        self.client = client
        self.prefix = prefix
        self._update = client.register_script(_UPDATE)

    async def get(self, keys: list[str]) -> list[Baseline]:
        """One pipeline round trip for all keys."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.hmget(f"{self.prefix}:{k}", ["n", "mean", "m2"])
                rows = await pipe.execute()
        except RedisError as exc:
            raise DependencyError(f"Redis failed: {type(exc).__name__}", dependency="redis") from exc
        out = []
        for n, mean, m2 in rows:
            out.append(Baseline(int(n or 0), float(mean or 0.0), float(m2 or 0.0)))
        return out

    async def add(self, keys: list[str], amount: int) -> None:
        """Atomic Welford update of every key."""
        try:
            await self._update(keys=[f"{self.prefix}:{k}" for k in keys], args=[float(amount), _STATS_TTL])
        except RedisError as exc:
            raise DependencyError(f"Redis failed: {type(exc).__name__}", dependency="redis") from exc


class AnomalyRule:
    """Flags an amount more than ``sigma`` standard deviations above its payTo's or resource's baseline."""

    name = "amount_anomaly"

    def __init__(self, store: StatsStore) -> None:
        self.store = store
        self.inline = isinstance(store, MemoryStats)  # in-process baselines: no I/O

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """Only upward outliers count (paying less than usual is not a risk), and only with enough history."""
        cfg = ctx.config.rule(self.name) if ctx.config is not None else None
        if cfg is None or not cfg.enabled:
            return []
        keys = baseline_keys(ctx)
        baselines = await self.store.get(keys)
        sigma = float(cfg.param("sigma") or 3.0)
        min_samples = int(cfg.param("min_samples") or 10)
        worst = 0.0
        flags = []
        for key, b in zip(keys, baselines, strict=True):
            if b.n < min_samples:
                continue
            # a floor of 1% of the mean: fixed-price resources have zero spread, and a cent's rounding is no anomaly
            std = max(b.std, abs(b.mean) * 0.01, 1.0)
            z = (ctx.amount - b.mean) / std
            worst = max(worst, z)
            if z > sigma:
                scope = key.split(":", 1)[0]
                msg = f"amount {ctx.amount} is {z:.1f} sigma above the {scope} mean {b.mean:.0f} (n={b.n})"
                flags.append(Flag(f"amount_anomaly_{scope}", cfg.severity, msg, self.name, cfg.action))
        ctx.facts["anomaly_z"] = round(worst, 3)
        return flags
