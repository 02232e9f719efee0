"""Payments per payer per minute and per hour (count and amount): Redis sliding windows, or in-process.

Redis keeps, per payer and window, a hash of time buckets (``c<bucket>`` counts, ``a<bucket>`` amounts); one Lua
call records the payment and reads both windows, so the stage costs a single round trip and concurrent payments
from many processes each see a distinct count. A payment is recorded once per payment id (verify and settle of
the same payment count once). Amount sums saturate at 2**63-1 in Redis (far beyond any sane threshold).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from risk.model import Flag, RiskContext
from x402.errors import DependencyError

#: (name, bucket width in seconds, buckets): the 1-minute window in 5 s buckets, the hour in 1-minute buckets.
WINDOWS: tuple[tuple[str, int, int], ...] = (("1m", 5, 12), ("1h", 60, 60))
_SEEN_TTL = 3700
_INT64_MAX = 2**63 - 1

_LUA = """
local now = tonumber(ARGV[1])
local fresh = 0
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[3])) then fresh = 1 end
local out = {fresh}
for i = 2, #KEYS do
  local width = tonumber(ARGV[2 + 2 * (i - 1)])
  local count = tonumber(ARGV[3 + 2 * (i - 1)])
  local cur = math.floor(now / width)
  local oldest = cur - count + 1
  if fresh == 1 then
    redis.call('HINCRBY', KEYS[i], 'c' .. cur, 1)
    local r = redis.pcall('HINCRBY', KEYS[i], 'a' .. cur, ARGV[2])
    if type(r) == 'table' and r.err then redis.call('HSET', KEYS[i], 'a' .. cur, '9223372036854775807') end
    redis.call('EXPIRE', KEYS[i], width * (count + 1))
  end
  local all = redis.call('HGETALL', KEYS[i])
  local n = 0
  local amounts = {}
  for j = 1, #all, 2 do
    local idx = tonumber(string.sub(all[j], 2))
    if idx < oldest then
      redis.call('HDEL', KEYS[i], all[j])
    elseif string.sub(all[j], 1, 1) == 'c' then
      n = n + tonumber(all[j + 1])
    else
      amounts[#amounts + 1] = all[j + 1]
    end
  end
  out[#out + 1] = n
  out[#out + 1] = amounts
end
return out
"""


@dataclass(frozen=True, slots=True)
class Velocity:
    """Counts and amount sums in the recent windows, this payment included."""

    count_1m: int
    count_1h: int
    amount_1m: int
    amount_1h: int


class VelocityStore(Protocol):
    """Records a payment and answers the payer's recent activity."""

    kind: str

    async def observe(self, payer: str, payment_id: str, amount: int, now: float) -> Velocity:
        """Count this payment (once per id) and return the windows including it."""
        ...


class RedisVelocity:
    """Shared across processes through Redis."""

    kind = "redis"

    def __init__(self, client: Redis, *, prefix: str = "risk:v") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_LUA)

    async def observe(self, payer: str, payment_id: str, amount: int, now: float) -> Velocity:
        """One EVALSHA: record (deduplicated) and read both windows."""
        # {payer} is a hash tag: a cluster keeps the payer's keys on one slot, as a Lua script requires
        base = f"{self.prefix}:{{{payer}}}"
        keys = [f"{base}:seen:{payment_id}"] + [f"{base}:{name}" for name, _, _ in WINDOWS]
        args: list[Any] = [int(now), min(amount, _INT64_MAX), _SEEN_TTL]
        for _, width, count in WINDOWS:
            args += [width, count]
        try:
            res = await self._script(keys=keys, args=args)
        except RedisError as exc:
            raise DependencyError(f"Redis failed: {type(exc).__name__}", dependency="redis") from exc
        c1, a1, c2, a2 = int(res[1]), res[2], int(res[3]), res[4]
        return Velocity(c1, c2, sum(int(x) for x in a1), sum(int(x) for x in a2))


class _Window:
    """One sliding window with running count and sum: O(1) amortised per event (each leaves once)."""

    __slots__ = ("amount", "events", "width")

    def __init__(self, width: float) -> None:
        self.width = width
        self.events: deque[tuple[float, int]] = deque()
        self.amount = 0

    def add(self, ts: float, amount: int) -> None:
        self.events.append((ts, amount))
        self.amount += amount

    def expire(self, now: float) -> None:
        events, cutoff = self.events, now - self.width
        while events and events[0][0] <= cutoff:
            self.amount -= events.popleft()[1]


class MemoryVelocity:
    """The in-process equivalent (one node only): exact sliding windows with running sums per payer."""

    kind = "memory"

    def __init__(self, *, max_payers: int = 100_000, max_seen: int = 500_000) -> None:
        self.max_payers = max_payers
        self.max_seen = max_seen
        self._windows: dict[str, tuple[_Window, _Window]] = {}
        self._seen: dict[str, float] = {}

    async def observe(self, payer: str, payment_id: str, amount: int, now: float) -> Velocity:
        """Record (deduplicated) and count."""
        windows = self._windows.get(payer)
        if windows is None:
            if len(self._windows) >= self.max_payers:
                self._evict(now)
            windows = self._windows[payer] = (_Window(60.0), _Window(3600.0))
        minute, hour = windows
        seen_key = f"{payer}:{payment_id}"
        if self._seen.get(seen_key, 0.0) <= now:
            if len(self._seen) >= self.max_seen:
                self._evict(now)
            self._seen[seen_key] = now + _SEEN_TTL
            minute.add(now, amount)
            hour.add(now, amount)
        minute.expire(now)
        hour.expire(now)
        return Velocity(len(minute.events), len(hour.events), minute.amount, hour.amount)

    def _evict(self, now: float) -> None:
        for payer in [
            p for p, (_, hour) in self._windows.items() if not hour.events or hour.events[-1][0] <= now - 3600
        ]:
            del self._windows[payer]
        for key in [k for k, exp in self._seen.items() if exp <= now]:
            del self._seen[key]


class VelocityRule:
    """Flags a payer that pays more often (or more) than the tenant's per-minute/per-hour limits."""

    name = "velocity"

    def __init__(self, store: VelocityStore) -> None:
        self.store = store
        self.inline = store.kind == "memory"  # in-process counters: no I/O, run without a task

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """Fires when a window's value exceeds its limit (the payment that crosses it, and every later one)."""
        if not ctx.payer:
            return []
        pid = ctx.payment_id or uuid.uuid4().hex
        v = await self.store.observe(ctx.payer, pid, ctx.amount, ctx.timestamp or time.time())
        ctx.facts.update(velocity_1m=v.count_1m, velocity_1h=v.count_1h, amount_1m=v.amount_1m, amount_1h=v.amount_1h)
        cfg = ctx.config.rule(self.name) if ctx.config is not None else None
        if cfg is None or not cfg.enabled:
            return []
        checks = (
            ("velocity_count_1m", v.count_1m, cfg.param("max_per_minute"), "payments in the last minute"),
            ("velocity_count_1h", v.count_1h, cfg.param("max_per_hour"), "payments in the last hour"),
            ("velocity_amount_1m", v.amount_1m, cfg.param("max_amount_per_minute"), "paid in the last minute"),
            ("velocity_amount_1h", v.amount_1h, cfg.param("max_amount_per_hour"), "paid in the last hour"),
        )
        return [
            Flag(code, cfg.severity, f"{value} {what} (limit {limit})", self.name, cfg.action)
            for code, value, limit, what in checks
            if limit is not None and value > limit
        ]
