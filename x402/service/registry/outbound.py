"""Outbound HTTP for crawls and probes: timeouts, size limits, same-origin redirects only, no private addresses."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from x402 import __version__
from x402.errors import BadRequest, DependencyError

MAX_REDIRECTS: Final = 3
USER_AGENT: Final = f"x402-registry/{__version__}"


class OutboundFailed(DependencyError):
    """A remote origin could not be reached or answered something unusable; ``reason`` says which."""

    status = 502
    code = "upstream_unreachable"

    def __init__(self, detail: str, *, reason: str = "unreachable") -> None:
        super().__init__(detail, dependency="outbound", reason=reason)
        self.reason = reason


def is_public(ip: str) -> bool:
    """True for a globally routable unicast address (not private, loopback, link-local, CGNAT, multicast...)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def _refused(host: str) -> BadRequest:
    return BadRequest(f"{host} is a private, loopback or reserved address", code="private_address")


class PublicResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses names that lead to non-public addresses."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; BadRequest ``private_address`` if any address is not public (DNS rebinding too)."""
        results = await self._inner.resolve(host, port, family)
        if not all(is_public(r["host"]) for r in results):
            raise _refused(host)
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Fetched:
    """A remote answer, body capped."""

    url: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Outbound:
    """One aiohttp session for registry traffic; lives in the app's cleanup_ctx."""

    def __init__(self, *, allow_private: bool, timeout: float = 10.0, max_bytes: int = 1024 * 1024) -> None:
        self.allow_private = allow_private
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (inside the event loop)."""
        resolver = None if self.allow_private else PublicResolver()
        connector = aiohttp.TCPConnector(limit=64, limit_per_host=8, ttl_dns_cache=60, resolver=resolver)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, headers={"User-Agent": USER_AGENT}
        )

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_url(self, url: str) -> URL:
        """Parse an outbound URL; refuse non-http(s) and literal private addresses (names are checked on resolve)."""
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BadRequest(f"not an http(s) URL: {url!r}", code="invalid_url")
        if not self.allow_private:
            host = parsed.host
            try:
                literal = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                literal = None
            if literal is not None and not is_public(str(literal)):
                raise _refused(host)
            if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
                raise _refused(host)
        return parsed

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> Fetched:
        """Send one request; redirects are followed only within the same origin. Raises OutboundFailed."""
        if self._session is None:
            raise RuntimeError("Outbound.start() was not awaited")
        limit = max_bytes or self.max_bytes
        target = self.check_url(url)
        origin = target.origin()
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._session.request(
                    method, target, json=json_body, headers=headers, allow_redirects=False
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in (301, 302, 303, 307, 308) and location:
                        nxt = target.join(URL(location))
                        if nxt.origin() == origin:
                            target = self.check_url(str(nxt))
                            if resp.status == 303:
                                method, json_body = "GET", None
                            continue
                    body = await _read_capped(resp, limit)
                    return Fetched(str(target), resp.status, CIMultiDictProxy(CIMultiDict(resp.headers)), body)
            except BadRequest:
                raise
            except TimeoutError:
                raise OutboundFailed(f"{method} {target} timed out", reason="unreachable") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise OutboundFailed(f"{method} {target}: {type(exc).__name__}", reason="unreachable") from None
        raise OutboundFailed(f"{url}: more than {MAX_REDIRECTS} redirects", reason="too_many_redirects")


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise OutboundFailed(f"response of {declared} bytes exceeds {limit}", reason="response_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > limit:
            raise OutboundFailed(f"response exceeds {limit} bytes", reason="response_too_large")
        chunks.append(chunk)
    return b"".join(chunks)
