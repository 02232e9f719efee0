"""Paid MCP tools (x402 MCP transport) over streamable HTTP, paid on anvil through our facilitator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest

from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness.evm import address_of, fund_eth, rpc, token_balance, wait_receipt
from tests.harness.node import OFFICIAL_PYTHON
from tests.mcp.conftest import WEATHER, mcp_session, running_provider
from tests.paywall.conftest import AMOUNT
from x402.client import PaymentPolicy
from x402.facilitator.remote import RemoteFacilitator
from x402.mcp import PAYMENT_RESPONSE_META, McpPayer, payment_required_of
from x402.mcp.paid import bazaar_declaration
from x402.service.app import create_app
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.settings import Settings

INTEROP = Path(__file__).resolve().parents[1] / "interop"
#: PyPI x402 2.25 with its mcp extra (its own venv from tests/interop/requirements-official.txt, scripts/bootstrap)
OFFICIAL_CLIENT = INTEROP / "mcp_official_client.py"


def _payer(session: Any, chain: DevChain, key: str) -> McpPayer:
    return McpPayer(session, [EvmSigner(key)], PaymentPolicy(allowed_assets=[chain.token_address]))


async def test_unpaid_call_answers_the_payment_required_result(devchain: DevChain, service_settings: Settings) -> None:
    async with (
        running_provider(AppFacilitator, devchain, create_app(service_settings)) as provider,
        mcp_session(provider.url) as session,
    ):
        listed = {t.name: t for t in (await session.list_tools()).tools}
        assert set(listed) == {"get_weather", "echo"}
        price = (listed["get_weather"].meta or {})["x402/payment-required"]
        assert price["accepts"][0]["amount"] == str(AMOUNT)
        assert listed["echo"].meta is None

        result = await session.call_tool("get_weather", {"city": "Paris"})
        assert result.is_error is True
        doc = result.structured_content
        assert isinstance(doc, dict)
        assert len(result.content) == 1
        assert json.loads(result.content[0].text) == doc  # type: ignore[union-attr]
        assert doc["x402Version"] == 2
        assert doc["error"] == "Payment required to access this resource"
        assert doc["resource"] == {
            "url": "mcp://tool/get_weather",
            "description": "Weather for a city",
            "mimeType": "application/json",
        }
        [offer] = doc["accepts"]
        assert offer["payTo"] == provider.pay_to
        assert offer["amount"] == str(AMOUNT)
        assert offer["network"] == devchain.network
        bazaar_input = doc["extensions"]["bazaar"]["info"]["input"]
        assert bazaar_input["type"] == "mcp"
        assert bazaar_input["toolName"] == "get_weather"
        assert "tool" not in bazaar_input
        assert "toolName" in doc["extensions"]["bazaar"]["schema"]["properties"]["input"]["required"]
        assert bazaar_input["inputSchema"]["required"] == ["city"]
        assert bazaar_input["example"] == {"city": "Paris"}
        assert provider.calls == []

        # a free tool runs without payment
        free = await session.call_tool("echo", {"a": 1})
        assert not free.is_error
        assert json.loads(free.content[0].text) == {"a": 1}  # type: ignore[union-attr]

        # a payment that is not a PaymentPayload is refused with the challenge, the tool does not run
        bad = await session.call_tool(
            "get_weather", {"city": "Paris"}, meta=cast(Any, {"x402/payment": {"x402Version": 2}})
        )
        required = payment_required_of(bad)
        assert required is not None
        assert isinstance(required.error, str)
        assert required.error.startswith("invalid x402/payment")
        assert provider.calls == []


async def test_our_payer_pays_a_tool_through_the_in_process_facilitator(
    devchain: DevChain, service_settings: Settings, payer_key: str
) -> None:
    async with (
        running_provider(AppFacilitator, devchain, create_app(service_settings)) as provider,
        mcp_session(provider.url) as session,
    ):
        paid = await _payer(session, devchain, payer_key).call_tool("get_weather", {"city": "Paris"})
        assert paid.ok, paid.result
        assert json.loads(paid.text()) == {"city": "Paris", "weather": "sunny"}
        assert paid.settlement is not None
        assert paid.settlement.success is True
        assert paid.settlement.payer == address_of(payer_key)
        assert paid.settlement.transaction.startswith("0x")
        assert (paid.result.meta or {})[PAYMENT_RESPONSE_META]["transaction"] == paid.settlement.transaction
        assert await token_balance(devchain, provider.pay_to) == AMOUNT
        assert provider.calls == [{"city": "Paris"}]

        # the same payment sent again is not a second purchase: the tool output is withheld
        again = await session.call_tool("get_weather", {"city": "Paris"}, meta=paid.sent_meta)  # type: ignore[arg-type]
        assert again.is_error is True
        assert payment_required_of(again) is not None
        assert await token_balance(devchain, provider.pay_to) == AMOUNT


async def test_failed_settlement_returns_the_payment_error_without_the_tool_output(
    devchain: DevChain, service_settings: Settings, payer_key: str
) -> None:
    app = create_app(service_settings)
    async with running_provider(AppFacilitator, devchain, app) as provider, mcp_session(provider.url) as session:
        payer = address_of(payer_key)

        async def drain() -> None:
            # between verify and settle the payer's tokens leave: the transferWithAuthorization cannot succeed
            balance = await token_balance(devchain, payer)
            await rpc(devchain.rpc_url, "anvil_impersonateAccount", payer)
            await fund_eth(devchain, payer)
            sink = address_of("0x" + "11" * 32)
            data = "0xa9059cbb" + "00" * 12 + sink.lower().removeprefix("0x") + balance.to_bytes(32, "big").hex()
            tx = await rpc(
                devchain.rpc_url, "eth_sendTransaction", {"from": payer, "to": devchain.token_address, "data": data}
            )
            await wait_receipt(devchain, tx)

        provider.before_return.append(drain)
        paid = await _payer(session, devchain, payer_key).call_tool("get_weather", {"city": "Paris"})
        assert provider.calls == [{"city": "Paris"}]  # the tool ran ...
        assert paid.result.is_error is True
        assert not paid.ok
        assert "sunny" not in json.dumps(paid.result.model_dump(by_alias=True))  # ... its output is withheld
        required = payment_required_of(paid.result)
        assert required is not None
        assert isinstance(required.error, str)
        assert required.error.startswith("Settlement failed")
        assert paid.settlement is not None
        assert paid.settlement.success is False
        assert await token_balance(devchain, provider.pay_to) == 0


@pytest.mark.slow
async def test_official_python_mcp_client_pays_through_the_remote_facilitator(
    aiohttp_server: Any, devchain: DevChain, service_settings: Settings, payer_key: str, tmp_path: Path
) -> None:
    """The PyPI ``x402[mcp]`` client (own venv) pays our tool; verify/settle go over HTTP to our facilitator."""
    assert OFFICIAL_PYTHON.exists(), "run scripts/bootstrap (it creates tests/interop/.venv-official)"
    facilitator_app = await aiohttp_server(create_app(service_settings))
    remote = RemoteFacilitator(str(facilitator_app.make_url("/")))
    async with running_provider(lambda _app: remote, devchain) as provider:
        proc = await asyncio.create_subprocess_exec(
            str(OFFICIAL_PYTHON),
            str(OFFICIAL_CLIENT),
            provider.url,
            "get_weather",
            json.dumps({"city": "Lisbon"}),
            payer_key,
            cwd=str(tmp_path),  # outside the checkout: our x402/ must not shadow the SDK's
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()[-3000:]
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert summary["isError"] is False, summary
        assert summary["paymentMade"] is True
        assert json.loads(summary["texts"][0]) == {"city": "Lisbon", "weather": "sunny"}
        assert summary["receipt"]["success"] is True
        assert summary["receipt"]["payer"] == address_of(payer_key)
        assert summary["receipt"]["transaction"].startswith("0x")
        assert provider.calls == [{"city": "Lisbon"}]
        assert await token_balance(devchain, provider.pay_to) == AMOUNT


#: The official SDK's bazaar facilitator check of a declaration (x402.extensions.bazaar, own venv)
_OFFICIAL_BAZAAR_CHECK = """
import json, sys
from x402.extensions.bazaar.facilitator import validate_discovery_extension_spec
result = validate_discovery_extension_spec(json.load(sys.stdin))
print(json.dumps({"valid": result.valid, "errors": result.errors}))
"""


async def test_official_bazaar_facilitator_accepts_the_declaration(tmp_path: Path) -> None:
    """The PyPI SDK's bazaar facilitator requires ``info.input.toolName`` of an MCP declaration."""
    assert OFFICIAL_PYTHON.exists(), "run scripts/bootstrap (it creates tests/interop/.venv-official)"
    declaration = bazaar_declaration(WEATHER, example={"city": "Paris"})
    assert declaration["info"]["input"]["toolName"] == "get_weather"

    async def official_check(doc: dict[str, Any]) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            str(OFFICIAL_PYTHON),
            "-c",
            _OFFICIAL_BAZAAR_CHECK,
            cwd=str(tmp_path),  # outside the checkout: our x402/ must not shadow the SDK's
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(doc).encode()), 60)
        assert proc.returncode == 0, err.decode()[-3000:]
        return dict(json.loads(out))

    assert await official_check(declaration) == {"valid": True, "errors": []}
    # the legacy spelling is what it refuses: the check can fail
    legacy = json.loads(json.dumps(declaration))
    legacy["info"]["input"]["tool"] = legacy["info"]["input"].pop("toolName")
    assert (await official_check(legacy))["valid"] is False
