"""The MCP examples run for real: ``x402 serve --dev``, ``examples/mcp_paid_tool.py`` settled through it, and
``examples/mcp_agent.py`` paying that tool from dev account 1 with our MCP payer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key, token_balance
from tests.harness.services import free_port
from tests.paywall.test_examples import ROOT, _process, _wait_http


@pytest.mark.slow
async def test_paid_tool_example_is_paid_by_the_agent_example(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    serve_env = {
        "DATABASE_URL": database_url,
        "X402_PORT": str(port),
        "X402_DEV_ANVIL_PORT": str(free_port()),
        "X402_DATA_DIR": str(tmp_path),
        "X402_LOG_LEVEL": "warning",
    }
    base = f"http://127.0.0.1:{port}"
    async with _process(sys.executable, "-m", "x402.service.cli", "serve", "--dev", env=serve_env) as serve:
        dev = (await _well_known(base, serve))["dev"]
        chain = DevChain(rpc_url=dev["rpcUrl"])
        pay_to = address_of(new_key())
        tool_port = free_port()
        tool_env = {
            "FACILITATOR_URL": base,
            "PAY_TO": pay_to,
            "ASSET": dev["asset"]["address"],
            "TOKEN_NAME": dev["asset"]["name"],
            "TOKEN_VERSION": dev["asset"]["version"],
            "PORT": str(tool_port),
        }
        async with _process(sys.executable, "examples/mcp_paid_tool.py", env=tool_env) as tool:
            mcp_url = f"http://127.0.0.1:{tool_port}/mcp"
            await _wait_http(mcp_url, tool)  # GET is 405 (stateless MCP answers POST): the server is up
            agent = await asyncio.create_subprocess_exec(
                sys.executable,
                "examples/mcp_agent.py",
                cwd=ROOT,
                env={**os.environ, "MCP_URL": mcp_url, "PAYER_KEY": dev["payers"][1]["privateKey"]},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(agent.communicate(), 90)
            assert agent.returncode == 0, err.decode()[-3000:]
            printed = json.loads(out.decode().strip().splitlines()[-1])
            assert printed["ok"] is True, printed
            assert json.loads(printed["text"]) == {"city": "Lisbon", "sky": "sunny"}
            assert printed["settlement"]["success"] is True
            assert printed["settlement"]["payer"] == dev["payers"][1]["address"]
        assert await token_balance(chain, pay_to) == 10_000


async def _well_known(base: str, serve: asyncio.subprocess.Process) -> Any:
    """``/.well-known/x402`` once it answers 200 (a busy box may answer something else first)."""
    for _ in range(100):
        doc = await _wait_http(base + "/.well-known/x402", serve)
        if doc is not None:
            return doc
        await asyncio.sleep(0.5)
    raise AssertionError("/.well-known/x402 never answered 200")
