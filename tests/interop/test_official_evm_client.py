"""The official x402 TypeScript SDKs (@x402/* 2.27) against our facilitator on a local anvil chain.

* ``evm_payload.mjs``: the official client signs an EIP-3009 payment; we POST it to our ``/verify`` and ``/settle``.
* ``express_server.mjs`` + ``fetch_pay.mjs``: an official resource server uses our facilitator over HTTP and the
  official fetch wrapper pays it end to end.
"""

from __future__ import annotations

import secrets
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from eth_account import Account

from chains.config import AssetConfig, NetworkConfig
from chains.evm.devchain import DevChain
from tests.harness.node import node_server, run_node
from x402.service.app import create_app
from x402.service.settings import Settings

ClientFactory = Any

NETWORK = "eip155:31337"
AMOUNT = 10_000
BALANCE_OF = "0x70a08231"  # balanceOf(address)


async def _rpc(rpc_url: str, method: str, params: list[Any]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as resp,
    ):
        body = await resp.json(content_type=None)
    assert "error" not in body, body
    return body["result"]


async def _token_balance(devchain: DevChain, owner: str) -> int:
    data = BALANCE_OF + owner.lower().removeprefix("0x").rjust(64, "0")
    result = await _rpc(devchain.rpc_url, "eth_call", [{"to": devchain.token_address, "data": data}, "latest"])
    return int(result, 16)


async def _fresh_facilitator_key(devchain: DevChain) -> str:
    """A new facilitator signer funded with 10 ETH (dev account 0 is used by other tests)."""
    account = Account.create()
    await _rpc(devchain.rpc_url, "anvil_setBalance", [account.address, hex(10 * 10**18)])
    key: str = account.key.hex()
    return key if key.startswith("0x") else "0x" + key


def _fresh_address() -> str:
    address: str = Account.from_key("0x" + secrets.token_hex(32)).address
    return address


async def _facilitator_settings(settings: Settings, devchain: DevChain) -> Settings:
    return settings.with_(
        networks=(
            NetworkConfig(
                network=NETWORK,
                rpc_urls=(devchain.rpc_url,),
                assets=(
                    AssetConfig(
                        address=devchain.token_address,
                        name=devchain.token_name,
                        version=devchain.token_version,
                        decimals=devchain.token_decimals,
                    ),
                ),
            ),
        ),
        evm_signer_key=await _fresh_facilitator_key(devchain),
    )


# ``settings`` (and so the test database) comes before the app fixture, so the app is torn down before its database.
async def test_official_client_payload_verifies_and_settles(
    settings: Settings, devchain: DevChain, aiohttp_client: ClientFactory
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(await _facilitator_settings(settings, devchain)))
    pay_to = _fresh_address()
    payer_key, payer = devchain.payer_keys[8], devchain.payer_addresses[8]
    requirements = {
        "scheme": "exact",
        "network": NETWORK,
        "amount": str(AMOUNT),
        "asset": devchain.token_address,
        "payTo": pay_to,
        "maxTimeoutSeconds": 60,
        "extra": {"name": devchain.token_name, "version": devchain.token_version},
    }
    payment_required = {
        "x402Version": 2,
        "error": "Payment required",
        "resource": {"url": "http://127.0.0.1/paid", "description": "", "mimeType": ""},
        "accepts": [requirements],
    }

    payload = await run_node("evm_payload.mjs", stdin={"paymentRequired": payment_required, "privateKey": payer_key})
    assert payload["x402Version"] == 2
    assert payload["accepted"] == requirements
    auth = payload["payload"]["authorization"]
    assert auth["from"].lower() == payer.lower()
    assert auth["to"].lower() == pay_to.lower()
    assert auth["value"] == str(AMOUNT)

    body = {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements}
    r = await client.post("/verify", json=body)
    verified = await r.json()
    assert r.status == 200, verified
    assert verified["isValid"] is True, verified
    assert verified["payer"].lower() == payer.lower()

    r = await client.post("/settle", json=body)
    settled = await r.json()
    assert r.status == 200, settled
    assert settled["success"] is True, settled
    assert settled["network"] == NETWORK
    assert settled["payer"].lower() == payer.lower()
    tx = settled["transaction"]
    assert isinstance(tx, str)
    assert tx.startswith("0x")
    assert len(tx) == 66
    receipt = await _rpc(devchain.rpc_url, "eth_getTransactionReceipt", [tx])
    assert receipt is not None
    assert int(receipt["status"], 16) == 1

    assert await _token_balance(devchain, pay_to) == AMOUNT


async def test_official_express_server_and_fetch_client_through_our_facilitator(
    settings: Settings, devchain: DevChain, aiohttp_server: Any
) -> None:
    server = await aiohttp_server(create_app(await _facilitator_settings(settings, devchain)))
    facilitator_url = str(server.make_url("/")).rstrip("/")
    pay_to = _fresh_address()
    env = {
        "PORT": 0,
        "FACILITATOR_URL": facilitator_url,
        "AMOUNT": AMOUNT,
        "ASSET": devchain.token_address,
        "TOKEN_NAME": devchain.token_name,
        "TOKEN_VERSION": devchain.token_version,
        "PAY_TO": pay_to,
    }
    payer_key, payer = devchain.payer_keys[7], devchain.payer_addresses[7]
    async with node_server("express_server.mjs", env) as port:
        result = await run_node("fetch_pay.mjs", f"http://127.0.0.1:{port}/paid", env={"PAYER_KEY": payer_key})
        # asserted inside the block so that a failure carries the resource server's stderr
        assert result["status"] == 200, result

    assert result["body"] == {"ok": True, "paid": True}
    receipt = result["paymentResponse"]
    assert receipt is not None, result
    assert receipt["success"] is True, receipt
    assert receipt["network"] == NETWORK
    assert receipt["payer"].lower() == payer.lower()
    assert receipt["transaction"].startswith("0x")
    assert await _token_balance(devchain, pay_to) == AMOUNT
