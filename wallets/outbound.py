"""Outbound HTTP for agent payments: no private/loopback targets (unless allowed), same-host redirects only,
timeouts and a response size limit. The resolver checks the address actually connected to (DNS rebinding)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from wallets.errors import OutboundRefused, UpstreamFailed

MAX_REDIRECTS: Final = 3
#: Hop-by-hop request headers, never forwarded.
DROPPED: Final = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
    }
)


def public_address(ip: str) -> bool:
    """True for a globally routable unicast address."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class GuardedResolver(AbstractResolver):
    """Resolves through the default resolver, then drops every non-public address."""

    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Public addresses of ``host`` only; refuses when none is left."""
        found = [r for r in await self._inner.resolve(host, port, family) if public_address(r["host"])]
        if not found:
            raise OutboundRefused(f"{host} resolves to no public address", host=host)
        return found

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


@dataclass(slots=True)
class Fetched:
    """One upstream answer, body read in full (within the limit)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str


class Fetcher:
    """One aiohttp session for every outbound payment request of this process."""

    def __init__(self, *, allow_private: bool, timeout: float = 30.0, max_bytes: int = 1024 * 1024) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared session (created on first use, inside the loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=256, resolver=None if self.allow_private else GuardedResolver(), ttl_dns_cache=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout), auto_decompress=True
            )
        return self._session

    def check_url(self, url: str) -> URL:
        """Parse and vet a target URL (scheme, host, literal private IPs)."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise OutboundRefused("not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise OutboundRefused("only absolute http(s) URLs can be paid for")
        if parsed.user or parsed.password:
            raise OutboundRefused("URLs with credentials are not allowed")
        if not self.allow_private:
            try:
                literal = ipaddress.ip_address(parsed.host.strip("[]"))
            except ValueError:
                literal = None
            if literal is not None and not public_address(str(literal)):
                raise OutboundRefused(f"{parsed.host} is not a public address", host=parsed.host)
            if parsed.host.lower() in ("localhost", "localhost.localdomain") or parsed.host.endswith(".localhost"):
                raise OutboundRefused("localhost is not allowed", host=parsed.host)
        return parsed

    async def fetch(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Fetched:
        """Send one request; follows up to three redirects on the same scheme, host and port."""
        target = self.check_url(url)
        sent: CIMultiDict[str] = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in DROPPED)
        for _ in range(MAX_REDIRECTS + 1):
            resp = await self._once(method, target, sent, body)
            if resp.status not in (301, 302, 303, 307, 308) or "Location" not in resp.headers:
                return resp
            nxt = self.check_url(urljoin(str(target), resp.headers["Location"]))
            if (nxt.scheme, nxt.host, nxt.port) != (target.scheme, target.host, target.port):
                raise OutboundRefused("the upstream redirected to another host", location=str(nxt.with_query(None)))
            if resp.status == 303 or (resp.status in (301, 302) and method.upper() == "POST"):
                method, body = "GET", None
            target = nxt
        raise UpstreamFailed("too many redirects")

    async def _once(self, method: str, url: URL, headers: CIMultiDict[str], body: bytes | None) -> Fetched:
        kw: dict[str, Any] = {"headers": headers, "allow_redirects": False}
        if body is not None:
            kw["data"] = body
        try:
            async with self.session().request(method, url, **kw) as resp:
                declared = resp.content_length
                if declared is not None and declared > self.max_bytes:
                    raise UpstreamFailed(
                        f"the upstream answer is larger than {self.max_bytes} bytes", code="upstream_too_large"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise UpstreamFailed(
                            f"the upstream answer is larger than {self.max_bytes} bytes", code="upstream_too_large"
                        )
                    chunks.append(chunk)
                return Fetched(resp.status, resp.headers, b"".join(chunks), str(resp.url))
        except OutboundRefused:
            raise
        except TimeoutError:
            raise UpstreamFailed(
                f"the upstream did not answer within {self.timeout:g} s", code="upstream_timeout"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutboundRefused):
                raise exc.os_error from None
            raise UpstreamFailed(
                f"cannot connect to the upstream: {type(exc).__name__}", code="upstream_unreachable"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(
                f"the upstream request failed: {type(exc).__name__}", code="upstream_unreachable"
            ) from None

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
