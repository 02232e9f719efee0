"""The MCP gateway of ``x402 serve`` (``/v1/mcp``) with the official ``mcp`` client as the agent, on anvil."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from chains.evm.devchain import DevChain
from tests.harness.evm import mint, token_balance
from tests.harness.paychain import EvmChain
from tests.mcp.conftest import mcp_session
from tests.wallets.conftest import ADMIN, Upstream, service_factory, upstream

__all__ = ["upstream"]  # fixture

Client = TestClient[Any, Any]


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """The gateway's payments settle on anvil (the wallet rig's fake chain is not used here)."""
    return EvmChain(devchain)


@pytest.fixture
async def gateway(chain: EvmChain, database_url: str, aiohttp_client: Any) -> Client:
    """A wallet service with API keys on; the client sends tenant A's key."""
    return await service_factory(chain, database_url, aiohttp_client, keys_on=True)()


async def _wallet(client: Client, policy: dict[str, Any], fund: int, devchain: DevChain) -> tuple[str, str]:
    """A wallet of the client's tenant (funded) and an agent key bound to it."""
    r = await client.post("/v1/wallets", json={"name": "agent", "chains": ["evm"], "policy": policy})
    assert r.status == 201, await r.text()
    wallet = await r.json()
    await mint(devchain, wallet["addresses"]["evm"], fund)
    r = await client.post(f"/v1/wallets/{wallet['id']}/agent-keys")
    assert r.status == 201, await r.text()
    return wallet["id"], (await r.json())["key"]


async def _listed(
    client: Client, upstream: Upstream, devchain: DevChain, price: int | None = None, path: str = "/paid"
) -> str:
    """List the upstream's paid route in the registry (as its tenant)."""
    body = {
        "url": upstream.base_url + path,
        "method": "GET",
        "description": "Paid weather forecast of the test upstream",
        "mimeType": "application/json",
        "accepts": [
            {
                "scheme": "exact",
                "network": devchain.network,
                "amount": str(upstream.price if price is None else price),
                "asset": devchain.token_address,
                "payTo": upstream.pay_to,
                "maxTimeoutSeconds": 120,
                "extra": {"name": devchain.token_name, "version": devchain.token_version},
            }
        ],
    }
    r = await client.post("/v1/resources", json=body)
    assert r.status == 201, await r.text()
    resource_id: str = (await r.json())["id"]
    return resource_id


def _doc(result: Any) -> dict[str, Any]:
    doc = result.structured_content
    assert isinstance(doc, dict)
    assert json.loads(result.content[0].text) == doc
    return doc


async def test_agent_searches_and_pays_a_listed_resource_from_its_wallet(
    gateway: Client, upstream: Upstream, devchain: DevChain
) -> None:
    resource_id = await _listed(gateway, upstream, devchain)
    wallet_id, agent_key = await _wallet(gateway, {"totalBudget": "50000"}, 10**8, devchain)
    url = str(gateway.make_url("/v1/mcp"))
    before = await token_balance(devchain, upstream.pay_to)

    async with mcp_session(url, {"Authorization": f"Bearer {agent_key}"}) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"search", "describe", "call"} <= set(tools)
        listed = tools["r_" + resource_id.replace("-", "")]
        assert f"price: {upstream.price} of {devchain.token_address} on {devchain.network}" in (
            listed.description or ""
        )

        found = _doc(await session.call_tool("search", {"query": "weather forecast"}))
        assert [r["id"] for r in found["resources"]] == [resource_id]
        assert found["resources"][0]["minPrice"] == str(upstream.price)

        described = _doc(await session.call_tool("describe", {"resource": resource_id}))
        assert described["resource"] == upstream.paid_url
        assert described["accepts"][0]["amount"] == str(upstream.price)

        paid = await session.call_tool("call", {"resource": resource_id})
        assert not paid.is_error, paid.content
        doc = _doc(paid)
        assert doc["upstream"]["status"] == 200
        assert json.loads(doc["upstream"]["body"]) == {"paid": True, "path": "/paid"}
        assert doc["payment"]["paid"] is True
        assert doc["payment"]["status"] == "committed"
        assert doc["budget"]["total"] == {"cap": "50000", "used": str(upstream.price), "remaining": "40000"}

        # the per-resource tool is the same call
        again = await session.call_tool("r_" + resource_id.replace("-", ""), {})
        assert not again.is_error, again.content
        assert _doc(again)["budget"]["total"]["used"] == str(2 * upstream.price)

    agent = {"Authorization": f"Bearer {agent_key}"}
    r = await gateway.get(f"/v1/wallets/{wallet_id}/budget", headers=agent)
    assert (await r.json())["spent"] == str(2 * upstream.price)  # the wallet's budget, spent exactly
    assert await token_balance(devchain, upstream.pay_to) == before + 2 * upstream.price


async def test_policy_refusal_is_a_tool_error_with_the_policy_code(
    gateway: Client, upstream: Upstream, devchain: DevChain
) -> None:
    resource_id = await _listed(gateway, upstream, devchain)
    _, capped = await _wallet(gateway, {"perPaymentCap": str(upstream.price - 1)}, 10**8, devchain)
    _, fenced = await _wallet(gateway, {"allowedUrls": ["https://elsewhere.example/*"]}, 10**8, devchain)
    before = await token_balance(devchain, upstream.pay_to)
    url = str(gateway.make_url("/v1/mcp"))
    for key, code in ((capped, "per_payment_cap_exceeded"), (fenced, "url_not_allowed")):
        async with mcp_session(url, {"Authorization": f"Bearer {key}"}) as session:
            result = await session.call_tool("call", {"resource": resource_id})
            assert result.is_error is True
            assert _doc(result)["code"] == code
    assert await token_balance(devchain, upstream.pay_to) == before


async def test_second_tenant_cannot_see_or_pay_with_the_first_tenants_wallet(
    gateway: Client, upstream: Upstream, devchain: DevChain
) -> None:
    resource_id = await _listed(gateway, upstream, devchain)
    wallet_a, agent_a = await _wallet(gateway, {}, 10**8, devchain)
    # tenant B: its own tenant key (the operator makes it) and its own wallet
    op = {"Authorization": f"Bearer {ADMIN}"}
    r = await gateway.post("/v1/tenants", json={"name": "tenant-b"}, headers=op)
    tenant_b = (await r.json())["id"]
    r = await gateway.post(f"/v1/tenants/{tenant_b}/keys", json={"scopes": ["wallets", "registry"]}, headers=op)
    key_b = (await r.json())["key"]
    before = await token_balance(devchain, upstream.pay_to)
    url = str(gateway.make_url("/v1/mcp"))
    async with mcp_session(url, {"Authorization": f"Bearer {key_b}"}) as session:
        result = await session.call_tool("call", {"resource": resource_id, "walletId": wallet_a})
        assert result.is_error is True
        assert _doc(result)["code"] == "wallet_not_found"
        result = await session.call_tool("call", {"resource": resource_id})
        assert _doc(result)["code"] == "wallet_required"
    # agent A's key cannot pay with another wallet of its own tenant either
    wallet_a2, _ = await _wallet(gateway, {}, 10**8, devchain)
    async with mcp_session(url, {"Authorization": f"Bearer {agent_a}"}) as session:
        result = await session.call_tool("call", {"resource": resource_id, "walletId": wallet_a2})
        assert _doc(result)["code"] == "wallet_not_found"
    assert await token_balance(devchain, upstream.pay_to) == before
    assert wallet_a != wallet_a2


async def test_gateway_needs_an_api_key_with_the_wallets_scope(gateway: Client) -> None:
    url = str(gateway.make_url("/v1/mcp"))
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=init, headers=headers) as r:
            assert r.status == 401
            assert (await r.json())["code"] == "api_key_required"
        tenant = await tenant_key_of_scopes(gateway, ["verify"])
        async with http.post(url, json=init, headers={**headers, "Authorization": f"Bearer {tenant}"}) as r:
            assert r.status == 403
            assert (await r.json())["code"] == "insufficient_scope"
        wallets_key = await tenant_key_of_scopes(gateway, ["wallets"])
        auth = {**headers, "Authorization": f"Bearer {wallets_key}"}
        async with http.post(url, data="{}", headers={**auth, "Content-Type": "text/plain"}) as r:
            assert r.status == 415
            assert (await r.json())["code"] == "unsupported_media_type"
        for bad in ([init], {"jsonrpc": "1.0", "method": "tools/list"}, {**init, "id": {}}, {**init, "params": []}):
            async with http.post(url, json=bad, headers=auth) as r:
                assert r.status == 400, bad
                assert (await r.json())["code"] == "invalid_jsonrpc"
        async with http.post(url, json=init, headers=auth) as r:
            assert r.status == 200  # stateless: any request stands alone
            listed = [t["name"] for t in (await r.json())["result"]["tools"]]
            assert listed[:3] == ["search", "describe", "call"]


async def tenant_key_of_scopes(client: Client, scopes: list[str]) -> str:
    """A new tenant's key with ``scopes``."""
    op = {"Authorization": f"Bearer {ADMIN}"}
    r = await client.post("/v1/tenants", json={"name": "scoped"}, headers=op)
    tenant = (await r.json())["id"]
    r = await client.post(f"/v1/tenants/{tenant}/keys", json={"scopes": scopes}, headers=op)
    key: str = (await r.json())["key"]
    return key


async def test_a_live_price_above_the_listing_is_refused_before_signing(
    gateway: Client, upstream: Upstream, devchain: DevChain
) -> None:
    resource_id = await _listed(gateway, upstream, devchain, price=upstream.price - 1)
    wallet_id, key = await _wallet(gateway, {}, 10**8, devchain)
    before = await token_balance(devchain, upstream.pay_to)
    async with mcp_session(str(gateway.make_url("/v1/mcp")), {"Authorization": f"Bearer {key}"}) as session:
        result = await session.call_tool("call", {"resource": resource_id})
        assert result.is_error is True
        assert _doc(result)["code"] == "over_max_amount"
        # the agent may raise the cap itself
        paid = await session.call_tool("call", {"resource": resource_id, "maxAmount": str(upstream.price)})
        assert not paid.is_error, paid.content
    assert await token_balance(devchain, upstream.pay_to) == before + upstream.price
    r = await gateway.get(f"/v1/wallets/{wallet_id}/budget", headers={"Authorization": f"Bearer {key}"})
    assert (await r.json())["spent"] == str(upstream.price)


async def test_a_call_signs_in_instead_of_paying_again_where_the_wallet_has_an_entitlement(
    gateway: Client, upstream: Upstream, devchain: DevChain
) -> None:
    """The upstream's /signin offers Sign-In-With-X: the wallet that paid once signs in the second time (the
    wallet payer's own sign-in, reached through the gateway's call)."""
    resource_id = await _listed(gateway, upstream, devchain, path="/signin")
    wallet_id, key = await _wallet(gateway, {"totalBudget": str(5 * upstream.price)}, 10**8, devchain)
    before = await token_balance(devchain, upstream.pay_to)
    async with mcp_session(str(gateway.make_url("/v1/mcp")), {"Authorization": f"Bearer {key}"}) as session:
        first = _doc(await session.call_tool("call", {"resource": resource_id}))
        assert first["payment"]["paid"] is True
        second = _doc(await session.call_tool("call", {"resource": resource_id}))
        assert second["upstream"]["status"] == 200
        assert second["payment"]["paid"] is False
        assert second["payment"]["signedIn"]
        assert second["budget"]["total"]["used"] == str(upstream.price)
    assert await token_balance(devchain, upstream.pay_to) == before + upstream.price
    r = await gateway.get(f"/v1/wallets/{wallet_id}/budget", headers={"Authorization": f"Bearer {key}"})
    assert (await r.json())["spent"] == str(upstream.price)
