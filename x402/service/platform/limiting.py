"""Per-tenant rate limits (the ``limits`` library, Redis-shared) and monthly verification quotas."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.aio.strategies import RateLimiter as RateLimiter_
from limits.storage import storage_from_string

from x402.cache import Cache
from x402.errors import RateLimited
from x402.logs import get_logger
from x402.service.events.outbox import Event, insert_events
from x402.service.platform.tiers import Tier

log = get_logger("x402.service.platform")

QUOTA_TTL = 40 * 24 * 3600.0
THRESHOLDS = (80, 90, 100)
#: Told of a quota event after it is committed: (tenant id, event type, data).
Notify = Callable[[str, str, Mapping[str, Any]], None]


class LimitExceeded(RateLimited):
    """A 429 that carries its own response headers (RateLimit-*, X402-Quota-*)."""

    def __init__(self, detail: str, *, headers: Mapping[str, str], code: str | None = None, **extra: Any) -> None:
        super().__init__(detail, code=code, **extra)
        self.headers = dict(headers)


class RateLimiter:
    """A moving one-second window per tenant, shared by every process through Redis when configured."""

    def __init__(self, redis_url: str | None, connection_pool: Any = None) -> None:
        if redis_url:
            # redis-py, not the default coredis; reuse the cache's pool so connections are shared and closed once
            options: dict[str, Any] = {"implementation": "redispy"}
            if connection_pool is not None:
                options["connection_pool"] = connection_pool
            storage = storage_from_string("async+" + redis_url, **options)
        else:
            storage = storage_from_string("async+memory://")
        self.storage = storage
        # Redis: an exact moving window shared by every process. In process: the sliding-window counter, O(1) per
        # hit (the memory storage's moving window keeps a list per tenant and re-scans it in a thread on every hit).
        self.limiter: RateLimiter_ = (
            MovingWindowRateLimiter(storage) if redis_url else SlidingWindowCounterRateLimiter(storage)
        )
        self._items: dict[int, RateLimitItemPerSecond] = {}

    def _item(self, per_second: int) -> RateLimitItemPerSecond:
        item = self._items.get(per_second)
        if item is None:
            item = self._items[per_second] = RateLimitItemPerSecond(per_second)
        return item

    async def hit(self, tenant: str, tier: Tier) -> None:
        """Count one request; raise LimitExceeded (429 with Retry-After and RateLimit-*) when over the limit."""
        item = self._item(tier.rate_per_second)
        if await self.limiter.hit(item, "tenant", tenant):
            return
        stats = await self.limiter.get_window_stats(item, "tenant", tenant)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        raise LimitExceeded(
            f"rate limit of {tier.rate_per_second} requests per second exceeded",
            headers={
                "RateLimit-Limit": str(tier.rate_per_second),
                "RateLimit-Remaining": str(max(0, stats.remaining)),
                "RateLimit-Reset": str(reset),
            },
            retryAfter=reset,
        )


def month_key(now: datetime) -> str:
    """The quota period, e.g. ``2026-05``."""
    return now.strftime("%Y-%m")


def seconds_to_next_month(now: datetime) -> int:
    """Until the quota resets."""
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, math.ceil((nxt - now).total_seconds()))


class QuotaCounter:
    """Verifications per tenant per calendar month (UTC), counted in the cache; threshold events in Postgres."""

    def __init__(self, cache: Cache, pool: asyncpg.Pool, notify: Notify | None = None) -> None:
        self.cache = cache
        self.pool = pool
        #: also told of each threshold event (the e-mail warning), after its commit
        self.notify = notify

    @staticmethod
    def _key(tenant: str, period: str) -> str:
        return f"x402:quota:{tenant}:{period}"

    async def used(self, tenant: str, now: datetime | None = None) -> int:
        """Verifications counted this month."""
        raw = await self.cache.get(self._key(tenant, month_key(now or datetime.now(UTC))))
        return int(raw or 0)

    async def count(self, tenant_id: uuid.UUID, tier: Tier) -> dict[str, str]:
        """Count one verification; the headers to answer with. Raises LimitExceeded past 100 % without overage."""
        now = datetime.now(UTC)
        period = month_key(now)
        tenant = str(tenant_id)
        used = await self.cache.incr(self._key(tenant, period), ttl=QUOTA_TTL)
        limit = tier.monthly_quota
        headers = {
            "X402-Quota-Used": str(min(used, limit) if not tier.overage else used),
            "X402-Quota-Limit": str(limit),
        }
        reached = [p for p in THRESHOLDS if used * 100 >= limit * p]
        if reached:
            headers["X402-Quota-Warning"] = str(reached[-1])
        for p in reached:
            # only the request that crosses a threshold records it (INCR hands each value to exactly one caller)
            if used == max(1, math.ceil(limit * p / 100)):
                await self._event(tenant_id, f"quota_{p}", period, used, limit, tier)
        if used == limit + 1:
            await self._event(tenant_id, "quota_exceeded", period, used, limit, tier)
        if used > limit and not tier.overage:
            raise LimitExceeded(
                f"the {tier.name} tier's monthly quota of {limit} verifications is used up",
                code="quota_exceeded",
                headers=headers,
                retryAfter=seconds_to_next_month(now),
                quotaLimit=limit,
            )
        if used > limit:
            headers["X402-Quota-Overage"] = str(used - limit)
        return headers

    async def _event(self, tenant_id: uuid.UUID, kind: str, period: str, used: int, limit: int, tier: Tier) -> None:
        """Record a threshold once per period (table ``events``) with its provider event, in one transaction."""
        exceeded = kind == "quota_exceeded"
        data: dict[str, Any] = {"used": used, "limit": limit, "tier": tier.name, "period": period}
        if not exceeded:
            data["threshold"] = int(kind.removeprefix("quota_"))
        event_type = "quota.exceeded" if exceeded else "quota.threshold"
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """INSERT INTO events (tenant_id, kind, period, data) VALUES ($1, $2, $3, $4::jsonb)
                   ON CONFLICT ON CONSTRAINT events_once DO NOTHING RETURNING id""",
                tenant_id,
                kind,
                period,
                json.dumps(data),
            )
            if inserted is not None:
                await insert_events(conn, [Event(event_type, data, tenant_id=tenant_id)])
        if inserted is not None:
            log.info("quota_threshold", tenant=str(tenant_id), threshold=kind, used=used, limit=limit)
            if self.notify is not None:
                self.notify(str(tenant_id), event_type, data)
