"""A JSON-RPC proxy in front of anvil that can swallow chosen calls (the node never sees them, no answer comes back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web


@dataclass
class RpcProxy:
    """Forwards every call to ``upstream`` except the methods in ``hold``: those hang until the client gives up."""

    upstream: str
    hold: set[str] = field(default_factory=set)
    url: str = ""
    held: asyncio.Event = field(default_factory=asyncio.Event)
    held_calls: list[dict[str, Any]] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    #: methods answered late: forwarded after this many seconds (``held`` is set when one arrives)
    delay: dict[str, float] = field(default_factory=dict)
    #: method -> which of its calls (1 = the first) the "node" refuses with a JSON-RPC error, never forwarding them
    refuse: dict[str, set[int]] = field(default_factory=dict)
    refused_calls: list[dict[str, Any]] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    def _refused(self, call: Any) -> bool:
        if not isinstance(call, dict) or call.get("method") not in self.refuse:
            return False
        method = str(call["method"])
        self._seen[method] = self._seen.get(method, 0) + 1
        return self._seen[method] in self.refuse[method]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward, or hold forever when the body calls a held method (alone or in a batch)."""
        doc = await request.json()
        calls = doc if isinstance(doc, list) else [doc]
        if any(isinstance(c, dict) and c.get("method") in self.hold for c in calls):
            self.held_calls.extend(calls)
            self.held.set()
            await self.closing.wait()  # like a peer that took the request and died: no answer ever
            raise web.HTTPServiceUnavailable()
        late = max((self.delay.get(str(c.get("method")), 0.0) for c in calls if isinstance(c, dict)), default=0.0)
        if late:
            self.held_calls.extend(calls)
            self.held.set()
            await asyncio.sleep(late)
        refused = [c for c in calls if self._refused(c)]
        if refused:
            self.refused_calls.extend(refused)
            errors = [
                {"jsonrpc": "2.0", "id": c.get("id"), "error": {"code": -32000, "message": "refused by the test node"}}
                for c in refused
            ]
            forward = [c for c in calls if not any(c is r for r in refused)]
            answers: list[Any] = []
            if forward:
                async with aiohttp.ClientSession() as s, s.post(self.upstream, json=forward) as r:
                    answers = list(await r.json())
            by_id = {a.get("id"): a for a in [*answers, *errors] if isinstance(a, dict)}
            out = [by_id.get(c.get("id")) for c in calls]
            return web.json_response(out if isinstance(doc, list) else out[0])
        async with aiohttp.ClientSession() as s, s.post(self.upstream, json=doc) as r:
            return web.json_response(await r.json())


@asynccontextmanager
async def rpc_proxy(
    upstream: str, hold: set[str], delay: dict[str, float] | None = None, refuse: dict[str, set[int]] | None = None
) -> AsyncIterator[RpcProxy]:
    """Serve a proxy on a free 127.0.0.1 port."""
    proxy = RpcProxy(upstream, hold, delay=dict(delay or {}), refuse=dict(refuse or {}))
    app = web.Application()
    app.router.add_post("/", proxy.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    proxy.url = f"http://127.0.0.1:{port}/"
    try:
        yield proxy
    finally:
        proxy.closing.set()
        await runner.cleanup()
