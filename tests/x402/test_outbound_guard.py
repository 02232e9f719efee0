"""The one SSRF guard (x402.outbound), exercised through both callers with their own error codes.

Wallet payments (``wallets.outbound.Fetcher``): ``outbound_refused`` / ``upstream_*``; registry crawls and probes
(``x402.service.registry.outbound.Outbound``): ``private_address`` / ``invalid_url`` / ``OutboundFailed.reason``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from wallets.errors import OutboundRefused, UpstreamFailed
from wallets.outbound import Fetcher
from x402.errors import BadRequest, X402Error
from x402.outbound import Fetched, is_public
from x402.service.registry.outbound import Outbound, OutboundFailed

PRIVATE_URLS = [
    "http://127.0.0.1/x",
    "http://10.1.2.3/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://100.64.0.1/x",  # CGNAT
    "http://169.254.169.254/latest/meta-data/",  # link-local (cloud metadata)
    "http://0.0.0.0/x",
    "http://[::1]/x",
    "http://[fe80::1]/x",
    "http://[fc00::1]/x",
    "http://[::ffff:127.0.0.1]/x",  # IPv6-mapped loopback
    "http://[::ffff:169.254.169.254]/x",
    "http://localhost/x",
    "http://api.localhost/x",
    "http://metadata.internal/x",
]


@dataclass
class Caller:
    """One caller of the guard: how it fetches and which error codes it answers with."""

    name: str
    fetch: Callable[[str], Awaitable[Fetched]]
    close: Callable[[], Awaitable[None]]
    refused: type[X402Error]
    refused_code: str
    failed: type[X402Error]

    def failure(self, exc: X402Error) -> str:
        """The caller's machine-readable failure (wallet ``code``, registry ``reason``)."""
        return exc.reason if isinstance(exc, OutboundFailed) else exc.code


async def _wallet(allow_private: bool, timeout: float, max_bytes: int) -> Caller:
    f = Fetcher(allow_private=allow_private, timeout=timeout, max_bytes=max_bytes)

    async def fetch(url: str) -> Fetched:
        return await f.fetch("GET", url, {}, None)

    return Caller("wallet", fetch, f.close, OutboundRefused, "outbound_refused", UpstreamFailed)


async def _registry(allow_private: bool, timeout: float, max_bytes: int) -> Caller:
    o = Outbound(allow_private=allow_private, timeout=timeout, max_bytes=max_bytes)
    await o.start()

    async def fetch(url: str) -> Fetched:
        return await o.request("GET", url)

    return Caller("registry", fetch, o.close, BadRequest, "private_address", OutboundFailed)


FACTORIES = {"wallet": _wallet, "registry": _registry}


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> Callable[..., Awaitable[Caller]]:
    factory = FACTORIES[request.param]

    async def build(*, allow_private: bool = False, timeout: float = 5.0, max_bytes: int = 100_000) -> Caller:
        return await factory(allow_private, timeout, max_bytes)

    return build


@pytest.fixture
async def upstream() -> AsyncIterator[TestServer]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def same(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def away(request: web.Request) -> web.Response:
        # localhost is another host than 127.0.0.1 (where this server was reached)
        raise web.HTTPFound(f"http://localhost:{request.url.port}/ok")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 300_000)

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(30):
            await resp.write(b"y" * 10_000)
        await resp.write_eof()
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    app = web.Application()
    for path, handler in (("/ok", ok), ("/same", same), ("/away", away), ("/big", big), ("/chunked", big_chunked)):
        app.router.add_get(path, handler)
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_targets_are_refused(make: Callable[..., Awaitable[Caller]], url: str) -> None:
    caller = await make()
    try:
        with pytest.raises(caller.refused) as err:
            await caller.fetch(url)
        assert err.value.code == caller.refused_code
        assert err.value.status == 400
    finally:
        await caller.close()


async def test_a_name_resolving_to_a_private_address_is_refused_at_connect_time(
    make: Callable[..., Awaitable[Caller]], upstream: TestServer
) -> None:
    # the machine's own name passes the URL check (not an IP, not "localhost") but resolves to loopback:
    # the address actually connected to is what the guard checks, as against DNS rebinding
    name = socket.gethostname()
    infos = await asyncio.get_running_loop().getaddrinfo(name, None)
    if not infos or all(is_public(str(i[4][0])) for i in infos):
        pytest.skip(f"{name} does not resolve to a private address here")
    url = f"http://{name}:{upstream.port}/ok"
    caller = await make()
    try:
        with pytest.raises(caller.refused) as err:
            await caller.fetch(url)
        assert err.value.code == caller.refused_code
    finally:
        await caller.close()
    # the same URL works when private targets are allowed: the refusal came from the guard, not the network
    open_caller = await make(allow_private=True)
    try:
        assert (await open_caller.fetch(url)).body == b"hello"
    finally:
        await open_caller.close()


async def test_redirects_follow_the_same_host_only(
    make: Callable[..., Awaitable[Caller]], upstream: TestServer
) -> None:
    caller = await make(allow_private=True)
    try:
        got = await caller.fetch(str(upstream.make_url("/same")))
        assert (got.status, got.body, got.url) == (200, b"hello", str(upstream.make_url("/ok")))
        if caller.name == "wallet":
            with pytest.raises(OutboundRefused) as err:
                await caller.fetch(str(upstream.make_url("/away")))
            assert err.value.extra["location"] == f"http://localhost:{upstream.port}/ok"
        else:  # the registry reports the redirect itself (a probe counts it as "not a 402")
            got = await caller.fetch(str(upstream.make_url("/away")))
            assert (got.status, got.body) == (302, b"")
    finally:
        await caller.close()


@pytest.mark.parametrize("path", ["/big", "/chunked"])
async def test_bodies_over_the_limit_fail(
    make: Callable[..., Awaitable[Caller]], upstream: TestServer, path: str
) -> None:
    caller = await make(allow_private=True, max_bytes=100_000)
    try:
        with pytest.raises(caller.failed) as err:
            await caller.fetch(str(upstream.make_url(path)))
        assert (
            caller.failure(err.value) == {"wallet": "upstream_too_large", "registry": "response_too_large"}[caller.name]
        )
        assert err.value.status == 502
    finally:
        await caller.close()


async def test_a_slow_upstream_fails_with_the_callers_code(
    make: Callable[..., Awaitable[Caller]], upstream: TestServer
) -> None:
    caller = await make(allow_private=True, timeout=0.3)
    try:
        with pytest.raises(caller.failed) as err:
            await caller.fetch(str(upstream.make_url("/slow")))
        assert caller.failure(err.value) == {"wallet": "upstream_timeout", "registry": "unreachable"}[caller.name]
    finally:
        await caller.close()


async def test_credentials_and_non_http_urls_are_refused(make: Callable[..., Awaitable[Caller]]) -> None:
    caller = await make(allow_private=True)
    try:
        for url in ("ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/x", "/relative"):
            with pytest.raises(caller.refused) as err:
                await caller.fetch(url)
            assert err.value.code == {"wallet": "outbound_refused", "registry": "invalid_url"}[caller.name], url
    finally:
        await caller.close()


def test_one_guard_implementation() -> None:
    import wallets.outbound
    import x402.service.registry.outbound

    for module in (wallets.outbound, x402.service.registry.outbound):
        text = Path(module.__file__ or "").read_text()
        assert "ipaddress" not in text, module.__name__
        assert "AbstractResolver" not in text, module.__name__
