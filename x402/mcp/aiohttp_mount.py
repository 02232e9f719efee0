"""Serve an ``mcp`` SDK server over streamable HTTP from an aiohttp application.

The SDK's streamable-HTTP transport is an ASGI app; ``mount`` runs its session manager beside the aiohttp app and
hands it each request at ``path`` as an ASGI call (the body is read first, the answer streams back: JSON or SSE).
Tool handlers reach the aiohttp request through ``aiohttp_request(ctx)`` (authentication, tenant, app state).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

#: The ASGI scope key carrying the aiohttp request.
SCOPE_KEY = "x402.aiohttp_request"


def aiohttp_request(ctx: Any) -> web.Request | None:
    """The aiohttp request behind a tool call (``ctx`` is the handler's ``ServerRequestContext``)."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    if isinstance(scope, MutableMapping):
        found = scope.get(SCOPE_KEY)
        if isinstance(found, web.Request):
            return found
    return None


def _headers(request: web.Request) -> list[tuple[bytes, bytes]]:
    out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
    accept = request.headers.get("Accept", "").strip()
    if accept in ("", "*/*"):
        # a client that names no type accepts any: give the transport the types it asks streamable-HTTP clients for
        out = [(k, v) for k, v in out if k != b"accept"]
        out.append((b"accept", b"application/json, text/event-stream"))
    return out


def _scope(request: web.Request) -> dict[str, Any]:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    host, _, port = (request.host or "localhost").partition(":")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": "",
        "headers": _headers(request),
        "client": (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None,
        "server": (host, int(port) if port.isdigit() else 80),
        "state": {},
        SCOPE_KEY: request,
    }


async def _serve(manager: StreamableHTTPSessionManager, request: web.Request) -> web.StreamResponse:
    body = await request.read()  # bounded by the app's client_max_size (a guard may have read it already)
    finished = asyncio.Event()
    delivered = False
    response: web.StreamResponse | None = None

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=int(message["status"]))
            for name, value in message.get("headers", []):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
        elif message["type"] == "http.response.body" and response is not None:
            if not response.prepared:
                await response.prepare(request)
            chunk = message.get("body", b"")
            if chunk:
                await response.write(chunk)
            if not message.get("more_body", False):
                await response.write_eof()

    try:
        await manager.handle_request(_scope(request), receive, send)
    finally:
        finished.set()
    if response is None:
        raise web.HTTPInternalServerError(text="the MCP transport sent no answer")
    return response


def mount(
    app: web.Application,
    server: Server[Any],
    path: str = "/mcp",
    *,
    stateless: bool = True,
    json_response: bool = True,
    guard: Callable[[web.Request], Awaitable[None]] | None = None,
) -> StreamableHTTPSessionManager:
    """Serve ``server`` at ``path`` of ``app``; the session manager lives as long as the app.

    Stateless servers answer POST only (GET streams and DELETE belong to sessions), stateful ones POST, GET, DELETE.
    ``guard`` runs before the MCP transport sees a request (authentication): what it raises is the HTTP answer.
    """
    manager = StreamableHTTPSessionManager(app=server, stateless=stateless, json_response=json_response)

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        # the manager's task group must be entered and left by one task: give it its own
        started = asyncio.Event()
        stop = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(run(), name=f"mcp-session-manager{path}")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()
        yield
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def handler(request: web.Request) -> web.StreamResponse:
        if guard is not None:
            await guard(request)
        return await _serve(manager, request)

    app.cleanup_ctx.append(lifetime)
    for method in ("POST",) if stateless else ("POST", "GET", "DELETE"):
        app.router.add_route(method, path, handler)
    return manager
