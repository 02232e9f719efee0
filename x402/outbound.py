"""The one SSRF guard for outbound HTTP (wallet payments and webhooks, registry crawls and probes).

Public addresses only (unless allowed), checked on the literal URL and again on every address a name resolves to
(DNS rebinding); redirects followed only on the same scheme, host and port; a total timeout and a body size limit.
Callers translate ``Refused``/``Failed`` into their own error codes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal")


class Refused(Exception):
    """The policy refuses the target; ``reason`` is invalid_url, credentials, private_address or off_host_redirect."""

    def __init__(self, detail: str, *, reason: str, host: str | None = None, location: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason
        self.host = host
        self.location = location


class Failed(Exception):
    """The target could not be used; ``reason`` is timeout, unreachable, too_large or too_many_redirects."""

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason


def is_public(ip: str) -> bool:
    """True for a globally routable unicast address (not private, loopback, link-local, CGNAT, multicast...)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class PublicResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses a name if any address it leads to is not public."""

    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; ``Refused`` (private_address) unless every address is public."""
        results = await self._inner.resolve(host, port, family)
        if not results or not all(is_public(r["host"]) for r in results):
            raise Refused(
                f"{host} resolves to a private, loopback or reserved address", reason="private_address", host=host
            )
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


def check_url(url: str, *, allow_private: bool) -> URL:
    """Parse and vet a target URL: absolute http(s), no credentials, no literal private address or local name."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise Refused("not a valid URL", reason="invalid_url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Refused(f"not an absolute http(s) URL: {url!r}", reason="invalid_url")
    if parsed.user or parsed.password:
        raise Refused("URLs with credentials are not allowed", reason="credentials")
    if not allow_private:
        host = parsed.host.strip("[]").lower()
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if (
            (literal is not None and not is_public(str(literal)))
            or host in _LOCAL_NAMES
            or host.endswith(_LOCAL_SUFFIXES)
        ):
            raise Refused(
                f"{parsed.host} is a private, loopback or reserved address", reason="private_address", host=parsed.host
            )
    return parsed


@dataclass(frozen=True, slots=True)
class Fetched:
    """One remote answer, body read in full (within the limit)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str


class Stream:
    """One remote answer whose body is still arriving: status and headers now, the body chunk by chunk as it comes.

    The limits hold while it streams: more than ``limit`` bytes of (decoded) body or a read past ``deadline`` (the
    loop time fixed when the request was sent) raise ``Failed`` (too_large, timeout), a broken connection raises
    ``Failed`` (unreachable). Nothing is buffered beyond the chunk being handed over. Always ``close()`` it: after
    the whole body the connection goes back to the pool, otherwise it is closed (the rest is never read).
    """

    def __init__(self, resp: aiohttp.ClientResponse, *, limit: int, deadline: float, timeout: float) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(resp.headers))
        self.url = str(resp.url)
        self.limit = limit
        self.deadline = deadline
        self._timeout = timeout
        #: body bytes handed over so far; ``complete`` once the upstream's body ended where its framing says
        self.received = 0
        self.complete = False
        self._closed = False

    @property
    def declared(self) -> int | None:
        """The upstream's Content-Length, if it sent one."""
        return self._resp.content_length

    def oversized(self) -> Failed | None:
        """``too_large`` when the declared Content-Length is already above the limit (refuse before streaming)."""
        declared = self.declared
        if declared is not None and declared > self.limit:
            return Failed(f"the answer of {declared} bytes is larger than {self.limit} bytes", reason="too_large")
        return None

    def skip_body(self) -> None:
        """Answer with no body: the rest is never read and ``chunks()`` yields nothing."""
        self.close()
        self.complete = True

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives (each chunk whatever the socket had); raises ``Failed`` when a limit breaks."""
        if self._closed:
            return
        refused = self.oversized()
        if refused is not None:
            raise refused
        while True:
            try:
                async with asyncio.timeout_at(self.deadline):
                    chunk = await self._resp.content.readany()
            except TimeoutError:
                raise Failed(f"the answer did not finish within {self._timeout:g} s", reason="timeout") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise Failed(f"the answer broke off: {type(exc).__name__}", reason="unreachable") from None
            if not chunk:
                self.complete = True
                return
            room = self.limit - self.received
            if len(chunk) > room:  # hand over up to the limit, then break off
                if room > 0:
                    self.received += room
                    yield chunk[:room]
                raise Failed(f"the answer is larger than {self.limit} bytes", reason="too_large")
            self.received += len(chunk)
            yield chunk

    async def read(self) -> bytes:
        """The whole body (within the limits)."""
        return b"".join([chunk async for chunk in self.chunks()])

    def fetched(self, body: bytes) -> Fetched:
        """This answer as a ``Fetched`` with ``body``."""
        return Fetched(self.status, self.headers, body, self.url)

    def close(self) -> None:
        """Release the connection: back to the pool after a complete body, closed otherwise."""
        if self._closed:
            return
        self._closed = True
        if self.complete:
            self._resp.release()
        else:
            self._resp.close()


class GuardedClient:
    """One aiohttp session whose every request goes through the guard; close it in the owner's cleanup."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float,
        max_bytes: int = 1024 * 1024,
        connect_timeout: float | None = None,
        limit: int = 100,
        limit_per_host: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client_timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._limits = (limit, limit_per_host)
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared session (created on first use, inside the loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits[0],
                limit_per_host=self._limits[1],
                resolver=None if self.allow_private else PublicResolver(),
                ttl_dns_cache=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._client_timeout, headers=self._headers, auto_decompress=True
            )
        return self._session

    def check_url(self, url: str) -> URL:
        """``check_url`` with this client's private-address policy."""
        return check_url(url, allow_private=self.allow_private)

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        json: Any = None,
        max_bytes: int | None = None,
        refuse_off_host: bool = True,
    ) -> Fetched:
        """Send one request, following up to three same-host redirects; another host is refused or returned as is."""
        stream = await self.open(
            method, url, headers=headers, data=data, json=json, max_bytes=max_bytes, refuse_off_host=refuse_off_host
        )
        try:
            return stream.fetched(await stream.read())
        finally:
            stream.close()

    async def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        json: Any = None,
        max_bytes: int | None = None,
        refuse_off_host: bool = True,
    ) -> Stream:
        """``fetch`` up to the final answer's headers: its body is left to stream (within the same limits and the
        total timeout, counted from now). A redirect to another host is refused, or returned as is (body unread)."""
        limit = max_bytes or self.max_bytes
        deadline = asyncio.get_running_loop().time() + self.timeout
        target = self.check_url(url)
        for _ in range(MAX_REDIRECTS + 1):
            stream = await self._once(method, target, headers, data, json, limit, deadline)
            location = stream.headers.get("Location") if stream.status in _REDIRECTS else None
            if location is None:
                return stream
            stream.close()
            nxt = self.check_url(urljoin(str(target), location))
            if (nxt.scheme, nxt.host, nxt.port) != (target.scheme, target.host, target.port):
                if not refuse_off_host:
                    stream.skip_body()  # the redirect itself is the answer, its body unread
                    return stream
                raise Refused(
                    "the upstream redirected to another host",
                    reason="off_host_redirect",
                    host=nxt.host,
                    location=str(nxt.with_query(None)),
                )
            if stream.status == 303 or (stream.status in (301, 302) and method.upper() == "POST"):
                method, data, json = "GET", None, None
            target = nxt
        raise Failed(f"{url}: more than {MAX_REDIRECTS} redirects", reason="too_many_redirects")

    async def _once(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        json: Any,
        limit: int,
        deadline: float,
    ) -> Stream:
        kw: dict[str, Any] = {"headers": CIMultiDict(headers or {}), "allow_redirects": False}
        if data is not None:
            kw["data"] = data
        elif json is not None:
            kw["json"] = json
        try:
            async with asyncio.timeout_at(deadline):
                resp = await self.session().request(method, url, **kw)
        except (Refused, Failed):
            raise
        except TimeoutError:
            raise Failed(f"{method} {url} did not answer within {self.timeout:g} s", reason="timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise Failed(f"{method} {url} failed: {type(exc).__name__}", reason="unreachable") from None
        return Stream(resp, limit=limit, deadline=deadline, timeout=self.timeout)

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
