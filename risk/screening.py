"""Optional external address screening (off by default): a Protocol, a cached rule, and a Chainalysis client."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import aiohttp

from risk.addresses import normalize_address
from risk.model import Flag, RiskContext
from x402.wire import jsonlimits


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    """A provider's verdict on one address."""

    sanctioned: bool
    categories: tuple[str, ...] = ()
    detail: str = ""


@runtime_checkable
class ScreeningProvider(Protocol):
    """A remote screening service (Chainalysis, TRM, Elliptic...)."""

    name: str

    async def screen(self, address: str) -> ScreeningResult:
        """Screen one address; raises on a transport failure (the engine turns it into ``rule_error``)."""
        ...

    async def close(self) -> None:
        """Release the HTTP session."""
        ...


class ChainalysisScreening:
    """Chainalysis' free sanctions API: ``GET /api/v1/address/{address}`` with ``X-API-Key``."""

    name = "chainalysis"

    def __init__(self, api_key: str, *, base_url: str = "https://public.chainalysis.com", timeout: float = 2.0) -> None:
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def screen(self, address: str) -> ScreeningResult:
        """Empty ``identifications`` means clean."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self.base_url}/api/v1/address/{address}"
        async with self._session.get(url, headers={"X-API-Key": self._key}, allow_redirects=False) as resp:
            resp.raise_for_status()
            body = jsonlimits.loads(await resp.read())
        ids = body.get("identifications") or [] if isinstance(body, dict) else []
        cats = tuple(str(i.get("category", "")) for i in ids if isinstance(i, dict))
        names = ", ".join(str(i.get("name", "")) for i in ids if isinstance(i, dict))
        return ScreeningResult(bool(ids), cats, names)

    async def close(self) -> None:
        """Close the session if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class ScreeningRule:
    """Asks the provider about payer and payTo, caching answers so a hot payer costs one call an hour."""

    name = "screening"

    def __init__(self, provider: ScreeningProvider, *, ttl: float = 3600.0, max_entries: int = 100_000) -> None:
        self.provider = provider
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, ScreeningResult]] = {}

    async def _screen(self, address: str) -> ScreeningResult:
        key = normalize_address(address)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        result = await self.provider.screen(address)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()  # crude but bounded; a miss only costs one more remote call
        self._cache[key] = (now + self.ttl, result)
        return result

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """Blocking flags for addresses the provider reports as sanctioned."""
        flags = []
        for role, addr in (("payer", ctx.payer), ("payTo", ctx.pay_to)):
            if not addr:
                continue
            res = await self._screen(addr)
            if res.sanctioned:
                msg = f"{role} {addr} flagged by {self.provider.name}: {res.detail or ', '.join(res.categories)}"
                flags.append(Flag("screening_sanctioned", "critical", msg, self.name, "block"))
        return flags
