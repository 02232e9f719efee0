"""Runs in its own venv with the official ``x402[evm,mcp]`` SDK (PyPI): pay one MCP tool over streamable HTTP.

Usage: python mcp_official_client.py <mcp url> <tool> <arguments json> <payer key>; prints a JSON summary.
Started from a directory outside the checkout (the checkout's ``x402/`` package would shadow the SDK's).
"""

import asyncio
import json
import sys


async def main(url: str, tool: str, arguments: dict, key: str) -> dict:
    from eth_account import Account
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client  # mcp 1.x (tests/interop/requirements-official.txt)
    from x402.mechanisms.evm.exact import register_exact_evm_client
    from x402.mechanisms.evm.signers import EthAccountSigner

    from x402 import x402Client
    from x402.mcp import x402MCPSession

    client = x402Client()
    client.set_spend_controls(False)  # the dev chain's token is not one of the SDK's default assets
    register_exact_evm_client(client, EthAccountSigner(Account.from_key(key)))
    async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
        paying = x402MCPSession(session, client)
        await paying.initialize()
        result = await paying.call_tool(tool, arguments)
    receipt = result.payment_response
    if receipt is not None and hasattr(receipt, "model_dump"):
        receipt = receipt.model_dump(by_alias=True, exclude_none=True)
    texts = [item.text for item in result.content if getattr(item, "type", "") == "text"]
    return {"isError": bool(result.is_error), "paymentMade": result.payment_made, "texts": texts, "receipt": receipt}


if __name__ == "__main__":
    url, tool, arguments, key = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    print(json.dumps(asyncio.run(main(url, tool, arguments, key))))
