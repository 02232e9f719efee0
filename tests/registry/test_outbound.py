"""Outbound policy: private addresses refused (literal and resolved), redirects only within the origin, size cap."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from x402.outbound import PublicResolver, Refused, is_public
from x402.service.registry.outbound import Outbound, OutboundFailed
from x402.service.registry.probe import probe


def test_is_public() -> None:
    for ip in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "::1",
               "fc00::1", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "224.0.0.1"):  # fmt: skip
        assert not is_public(ip), ip
    for ip in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        assert is_public(ip), ip


async def test_resolver_refuses_names_of_private_addresses() -> None:
    resolver = PublicResolver()
    try:
        with pytest.raises(Refused) as err:
            await resolver.resolve("localhost", 80)
        assert err.value.reason == "private_address"
    finally:
        await resolver.close()


async def test_redirects_stay_on_the_origin_and_bodies_are_capped(aiohttp_server: Any) -> None:
    async def same(request: web.Request) -> web.Response:
        raise web.HTTPFound("/final")

    async def final(request: web.Request) -> web.Response:
        return web.Response(status=402, text="{}")

    async def away(request: web.Request) -> web.Response:
        # localhost is another host than 127.0.0.1 (the origin), so this must not be followed
        raise web.HTTPFound(f"http://localhost:{request.url.port}/final")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 300_000)

    app = web.Application()
    app.router.add_get("/same", same)
    app.router.add_get("/final", final)
    app.router.add_get("/away", away)
    app.router.add_get("/big", big)
    server = await aiohttp_server(app)
    outbound = Outbound(allow_private=True, timeout=5.0, max_bytes=100_000)
    await outbound.start()
    try:
        got = await outbound.request("GET", str(server.make_url("/same")))
        assert (got.status, got.url) == (402, str(server.make_url("/final")))
        got = await outbound.request("GET", str(server.make_url("/away")))
        assert got.status == 302
        result = await probe(outbound, str(server.make_url("/away")))
        assert (result.reason, result.http_status) == ("not_402", 302)
        with pytest.raises(OutboundFailed) as err:
            await outbound.request("GET", str(server.make_url("/big")))
        assert err.value.reason == "response_too_large"
    finally:
        await outbound.close()
