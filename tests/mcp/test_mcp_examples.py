"""The MCP examples run for real: ``x402 serve --dev``, ``examples/mcp_paid_tool.py`` settled through it, and
``examples/mcp_agent.py`` paying that tool from dev account 1 with our MCP payer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key, token_balance
from tests.harness.services import free_port
from tests.paywall.test_examples import ROOT, _process, _wait_http, provider_example_env, serve_dev


@pytest.mark.slow
async def test_paid_tool_example_is_paid_by_the_agent_example(database_url: str, tmp_path: Path) -> None:
    async with serve_dev(database_url, tmp_path) as (base, dev):
        chain = DevChain(rpc_url=dev["rpcUrl"])
        pay_to = address_of(new_key())
        tool_port = free_port()
        tool_env = provider_example_env(base, dev, pay_to, tool_port)
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
