"""An agent on the MCP gateway of ``x402 serve``: search the registry, then call a resource paid by its wallet.

The official MCP client connects to ``GATEWAY_URL`` (default http://127.0.0.1:4020/v1/mcp) with an agent key
(``API_KEY``: a key with the ``wallets`` scope, e.g. ``POST /v1/wallets/{id}/agent-keys``); ``WALLET_ID`` picks the
wallet when the key is not bound to exactly one. Prints the tools with their prices, the search hits and the paid
answer (upstream response, receipt, remaining budget).

Or pay a paid MCP tool directly from a key of your own: ``MCP_URL`` (e.g. examples/mcp_paid_tool.py's
http://127.0.0.1:8090/mcp) and ``PAYER_KEY`` (a private key holding the token) use ``x402.mcp.McpPayer`` instead.
"""

import asyncio
import json
import os
from typing import Any

import httpx2
import msgspec
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

env = os.environ


async def gateway() -> None:
    url = env.get("GATEWAY_URL", "http://127.0.0.1:4020/v1/mcp")
    headers = {"Authorization": f"Bearer {env['API_KEY']}"} if env.get("API_KEY") else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for tool in (await session.list_tools()).tools:
            print(f"{tool.name}: {tool.description}")
        found = await session.call_tool("search", {"query": env.get("QUERY", "")})
        print(json.dumps(found.structured_content, indent=2))
        hits: list[dict[str, Any]] = (found.structured_content or {}).get("resources", [])
        if hits:
            args: dict[str, Any] = {"resource": hits[0]["id"]}
            if env.get("WALLET_ID"):
                args["walletId"] = env["WALLET_ID"]
            paid = await session.call_tool("call", args)
            print(("refused: " if paid.is_error else "") + json.dumps(paid.structured_content, indent=2))


async def direct() -> None:
    from chains.evm.payer import EvmSigner
    from x402.client import PaymentPolicy
    from x402.mcp import McpPayer

    async with (
        streamable_http_client(env["MCP_URL"]) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        policy = PaymentPolicy(allowed_assets=["*"], max_amount=int(env.get("MAX_AMOUNT", "50000")))
        payer = McpPayer(session, [EvmSigner(env["PAYER_KEY"])], policy)
        result = await payer.call_tool(env.get("TOOL", "get_weather"), {"city": "Lisbon"})
        receipt = msgspec.to_builtins(result.settlement) if result.settlement else None
        print(json.dumps({"ok": result.ok, "text": result.text(), "settlement": receipt}))


if __name__ == "__main__":
    asyncio.run(direct() if env.get("MCP_URL") else gateway())
