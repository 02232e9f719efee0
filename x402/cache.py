"""Redis when REDIS_URL is set, otherwise an in-process stand-in (single node only, said at start-up)."""

from __future__ import annotations

import time
from typing import Protocol

import redis
import redis.asyncio as aioredis
from redis.driver_info import DriverInfo
from redis.exceptions import RedisError

from x402.errors import DependencyError


class Cache(Protocol):
    """The small key-value surface the service needs from Redis."""

    kind: str

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, if any."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, nx: bool = False) -> bool:
        """Store a value; with ``nx`` only when absent. True when stored."""
        ...

    async def incr(self, key: str, *, ttl: float) -> int:
        """Increment a counter that expires ``ttl`` seconds after it was created."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """In-process cache with expiry; correct for one process only."""

    kind = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, nx: bool = False) -> bool:
        if nx and self._live(key) is not None:
            return False
        self._data[key] = (value, time.monotonic() + ttl if ttl else None)
        return True

    async def incr(self, key: str, *, ttl: float) -> int:
        current = self._live(key)
        n = int(current or b"0") + 1
        expires = self._data[key][1] if current is not None else time.monotonic() + ttl
        self._data[key] = (str(n).encode(), expires)
        return n

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Redis-backed cache shared by every process."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        self.url = url
        # an explicit driver_info stops redis-py from scanning package metadata on every new connection
        self.client = aioredis.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            driver_info=DriverInfo(name="redis-py", lib_version=redis.__version__),
        )

    def _fail(self, exc: Exception) -> DependencyError:
        return DependencyError(f"Redis failed: {type(exc).__name__}", dependency="redis", code="redis_unavailable")

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(key)
        except RedisError as exc:
            raise self._fail(exc) from exc
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    async def set(self, key: str, value: bytes, *, ttl: float | None = None, nx: bool = False) -> bool:
        try:
            ok = await self.client.set(key, value, px=int(ttl * 1000) if ttl else None, nx=nx)
        except RedisError as exc:
            raise self._fail(exc) from exc
        return bool(ok)

    async def incr(self, key: str, *, ttl: float) -> int:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, int(ttl * 1000), nx=True)
                n, _ = await pipe.execute()
        except RedisError as exc:
            raise self._fail(exc) from exc
        return int(n)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.aclose()


def create_cache(redis_url: str | None) -> Cache:
    """RedisCache for a URL, MemoryCache without one."""
    return RedisCache(redis_url) if redis_url else MemoryCache()
