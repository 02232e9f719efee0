"""A JSON-RPC endpoint that is down (drops the connection or answers 502) until revived, then forwards upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web


@dataclass
class DeadRpc:
    """Counts requests; while ``dead`` each one fails the way ``mode`` says (``drop`` or ``502``)."""

    upstream: str
    mode: str = "drop"
    dead: bool = True
    hits: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Fail like a dead node or a broken load balancer, or forward the body unchanged."""
        self.hits += 1
        body = await request.read()
        if self.dead:
            if self.mode == "drop" and request.transport is not None:
                request.transport.close()  # the peer went away mid-request: no status line at all
                raise web.HTTPServiceUnavailable()
            return web.Response(status=502, text="bad gateway")
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession() as s, s.post(self.upstream, data=body, headers=headers) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")


@asynccontextmanager
async def dead_rpc(upstream: str, mode: str = "drop") -> AsyncIterator[DeadRpc]:
    """Serve a DeadRpc on a free 127.0.0.1 port."""
    node = DeadRpc(upstream, mode)
    app = web.Application()
    app.router.add_post("/", node.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    node.url = f"http://127.0.0.1:{port}/"
    try:
        yield node
    finally:
        await runner.cleanup()
