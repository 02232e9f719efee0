"""A paid MCP tool: ``get_weather`` costs PRICE atomic units of ASSET, paid to PAY_TO through x402 over MCP.

Served over streamable HTTP at ``http://127.0.0.1:PORT/mcp`` (official MCP SDK, mounted in aiohttp). An unpaid call
answers the x402 ``PaymentRequired`` as a tool error; a call with ``_meta["x402/payment"]`` runs after verify and
returns the receipt in ``_meta["x402/payment-response"]``.

env: PAY_TO, ASSET (token address), NETWORK (CAIP-2, default eip155:31337), TOKEN_NAME / TOKEN_VERSION (its EIP-712
domain, default "USD Coin" / "2"), PRICE (default 10000), PORT (default 8090), FACILITATOR_URL (e.g. the
``x402 serve --dev`` URL, default http://127.0.0.1:4020).
"""

import json
import os
from typing import Any

from aiohttp import web
from mcp import types
from mcp.server.lowlevel import Server

from x402.facilitator.remote import RemoteFacilitator
from x402.mcp import PaidTools
from x402.mcp.aiohttp_mount import mount
from x402.paywall import Offer

env = os.environ
OFFER = Offer(
    amount=int(env.get("PRICE", "10000")),
    asset=env.get("ASSET", ""),
    network=env.get("NETWORK", "eip155:31337"),
    pay_to=env.get("PAY_TO", ""),
    extra={"name": env.get("TOKEN_NAME", "USD Coin"), "version": env.get("TOKEN_VERSION", "2")},
)
WEATHER = types.Tool(
    name="get_weather",
    description="Today's weather for a city",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


async def get_weather(args: dict[str, Any]) -> types.CallToolResult:
    doc = {"city": args.get("city", "Lisbon"), "sky": "sunny"}
    return types.CallToolResult(content=[types.TextContent(text=json.dumps(doc))], structured_content=doc)


def build() -> web.Application:
    app = web.Application()
    tools = PaidTools(RemoteFacilitator(env.get("FACILITATOR_URL", "http://127.0.0.1:4020")))
    tools.add(WEATHER, get_weather, [OFFER], example={"city": "Lisbon"})
    server: Server[Any] = Server("weather", on_list_tools=tools.list_tools, on_call_tool=tools.call_tool)
    mount(app, server, "/mcp")
    return app


if __name__ == "__main__":
    web.run_app(build(), host="127.0.0.1", port=int(env.get("PORT", "8090")))
