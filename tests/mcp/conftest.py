"""MCP fixtures: a provider app (aiohttp) serving paid MCP tools over streamable HTTP, paid on the session anvil."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key
from tests.paywall.conftest import facilitator_key, make_offer, payer_key, service_settings
from x402.facilitator.base import Facilitator
from x402.mcp import PaidTools
from x402.mcp.aiohttp_mount import mount

WEATHER = types.Tool(
    name="get_weather",
    description="Weather for a city",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
__all__ = ["facilitator_key", "payer_key", "service_settings"]  # fixtures shared with the paywall tests

ECHO = types.Tool(name="echo", description="Free echo", input_schema={"type": "object"})


@dataclass
class McpProvider:
    """A running provider: its MCP URL, payTo address and how often the paid tool ran."""

    url: str
    pay_to: str
    tools: PaidTools
    calls: list[dict[str, Any]] = field(default_factory=list)
    before_return: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def provider_app(
    facilitator_of: Callable[[web.Application], Facilitator],
    chain: DevChain,
    pay_to: str,
    provider_ref: dict[str, McpProvider],
    app: web.Application | None = None,
) -> tuple[web.Application, PaidTools]:
    """An aiohttp app (``app`` or a new one) with ``get_weather`` (paid, 10 000 units) and ``echo`` (free) at /mcp."""
    app = app if app is not None else web.Application()
    tools = PaidTools(facilitator_of(app))

    async def weather(args: dict[str, Any]) -> types.CallToolResult:
        provider_ref["p"].calls.append(args)
        for hook in provider_ref["p"].before_return:
            await hook()
        doc = {"city": args.get("city"), "weather": "sunny"}
        return types.CallToolResult(content=[types.TextContent(text=json.dumps(doc))], structured_content=doc)

    async def echo(args: dict[str, Any]) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(text=json.dumps(args))])

    tools.add(WEATHER, weather, [make_offer(chain, pay_to)], example={"city": "Paris"})
    tools.add(ECHO, echo)
    server: Server[Any] = Server("paid-weather", on_list_tools=tools.list_tools, on_call_tool=tools.call_tool)
    mount(app, server, "/mcp")
    return app, tools


@asynccontextmanager
async def running_provider(
    facilitator_of: Callable[[web.Application], Facilitator], chain: DevChain, app: web.Application | None = None
) -> AsyncIterator[McpProvider]:
    """Start a provider on a real port."""
    pay_to = address_of(new_key())
    ref: dict[str, McpProvider] = {}
    app, tools = provider_app(facilitator_of, chain, pay_to, ref, app)
    server = TestServer(app)
    await server.start_server()
    try:
        ref["p"] = McpProvider(url=str(server.make_url("/mcp")), pay_to=pay_to, tools=tools)
        yield ref["p"]
    finally:
        await server.close()


@asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    """An initialized official MCP client session over streamable HTTP."""
    import httpx2

    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session
