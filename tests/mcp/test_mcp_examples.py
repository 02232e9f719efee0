"""The agents' examples run for real against ``x402 serve --dev``: ``examples/mcp_paid_tool.py`` settled through it
and ``examples/mcp_agent.py`` paying that tool from dev account 1 with our MCP payer; the gateway mode of
``mcp_agent.py``, ``agent_call.py`` and ``trust_scores.py`` with an agent key of a wallet holding dev account 2."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key, token_balance
from tests.harness.services import free_port
from tests.paywall.test_examples import ROOT, _process, _wait_http, provider_example_env, serve_dev
from x402.service.demo import DEMO_AMOUNT, DEMO_PAY_TO


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


def _printed(out: str) -> list[Any]:
    """The JSON documents a script printed (each starts a line, maybe after a ``refused: `` prefix)."""
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    for line in out.splitlines(keepends=True):
        start = line.find("{")
        if line.startswith(("{", "refused: {")):
            docs.append(decoder.raw_decode(out, pos + start)[0])
        pos += len(line)
    return docs


async def _example(script: str, env: dict[str, str]) -> str:
    """Run ``examples/<script>`` as the README does; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        f"examples/{script}",
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, (script, out.decode()[-2000:], err.decode()[-3000:])
    return out.decode()


@pytest.mark.slow
async def test_gateway_call_and_trust_examples_against_serve_dev(database_url: str, tmp_path: Path) -> None:
    """The README's "MCP gateway for agents", "One key, any resource" and "Trust scores" examples, as written."""
    async with serve_dev(database_url, tmp_path, listed=True) as (base, dev):
        chain = DevChain(rpc_url=dev["rpcUrl"])
        before = await token_balance(chain, DEMO_PAY_TO)
        demo_url = base + dev["demo"]["path"]
        # the README's set-up: a wallet holding dev account 2's tokens, then an agent key for it
        key = {"Authorization": f"Bearer {dev['apiKey']}"}
        async with aiohttp.ClientSession(headers=key) as http:
            body = {
                "name": "agent",
                "import": {"evm": dev["payers"][1]["privateKey"]},
                "policy": {"totalBudget": "100000"},
            }
            async with http.post(base + "/v1/wallets", json=body) as r:
                assert r.status == 201, await r.text()
                wallet = (await r.json())["id"]
            async with http.post(f"{base}/v1/wallets/{wallet}/agent-keys") as r:
                assert r.status == 201, await r.text()
                agent_key = (await r.json())["key"]

        # MCP gateway: API_KEY=$A QUERY=demo python examples/mcp_agent.py
        out = await _example("mcp_agent.py", {"GATEWAY_URL": base + "/v1/mcp", "API_KEY": agent_key, "QUERY": "demo"})
        assert {"search", "describe", "call"} <= {line.split(": ", 1)[0] for line in out.splitlines()}  # the tools
        found, paid = _printed(out)
        assert [hit["url"] for hit in found["resources"]][:1] == [demo_url], found
        assert not out.splitlines()[-1].startswith("refused"), out
        assert paid["upstream"]["status"] == 200, paid
        assert json.loads(paid["upstream"]["body"])["demo"] == "paid"
        assert (paid["payment"]["paid"], paid["payment"]["status"]) == (True, "committed")
        assert paid["budget"]["total"] == {
            "cap": "100000",
            "used": str(DEMO_AMOUNT),
            "remaining": str(100_000 - DEMO_AMOUNT),
        }
        assert await token_balance(chain, DEMO_PAY_TO) == before + DEMO_AMOUNT

        # one key, any resource: X402_URL=… X402_KEY=$A python examples/agent_call.py (the best "demo" match)
        called = json.loads(await _example("agent_call.py", {"X402_URL": base, "X402_KEY": agent_key}))
        assert called["status"] == 200, called
        assert json.loads(called["body"])["demo"] == "paid"
        # the wallet paid /demo/paid a moment ago: its Sign-In-With-X gets the answer without paying again
        receipt = called["receipt"]
        assert (receipt["walletId"], receipt["paid"], receipt["amount"], receipt["fee"]) == (wallet, False, "0", "0")
        [usage] = called["usage"]["resources"]
        assert (usage["resourceId"], usage["calls"], usage["paid"]) == (receipt["resourceId"], 1, 0)
        assert await token_balance(chain, DEMO_PAY_TO) == before + DEMO_AMOUNT

        # trust scores: X402_URL=… X402_KEY=$A WALLET_ID=$W MIN_TRUST=… python examples/trust_scores.py
        env = {"X402_URL": base, "X402_KEY": agent_key, "WALLET_ID": wallet}
        shown = json.loads(await _example("trust_scores.py", {**env, "MIN_TRUST": "0"}))
        assert shown["wallet"]["walletId"] == wallet
        assert shown["wallet"]["factors"]["payments"] == 1
        assert 0 <= shown["wallet"]["score"] <= 100
        assert shown["resources"] == [demo_url]  # scored on the routed call
        shown = json.loads(await _example("trust_scores.py", {**env, "MIN_TRUST": "100"}))
        assert shown["resources"] == []
