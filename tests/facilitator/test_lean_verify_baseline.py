"""bench/lean_verify.py, the baseline bench/verify.py divides by, verifies correctly on anvil: a figure against a
baseline that accepts anything would mean nothing."""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chains.evm.devchain import DevChain
from tests.harness.evm import (
    address_of,
    fund_eth,
    funded_payer,
    new_key,
    requirements,
    rpc,
    sign_payment,
    wait_receipt,
)

LEAN = Path(__file__).resolve().parents[2] / "bench" / "lean_verify.py"


def _lean() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_lean_verify", LEAN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lean = _lean()


@pytest.fixture
async def client(devchain: DevChain) -> AsyncIterator[TestClient[Any, Any]]:
    config = lean.Config(devchain.chain_id, devchain.token_address, devchain.token_name, devchain.token_version)
    async with TestClient(TestServer(lean.make_app(devchain.rpc_url, config))) as c:
        yield c


async def _verify(client: TestClient[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/verify", json=body)
    assert r.status == 200, await r.text()
    doc: dict[str, Any] = await r.json()
    return doc


async def test_valid_payment_is_valid_and_names_the_payer(client: TestClient[Any, Any], devchain: DevChain) -> None:
    payer = await funded_payer(devchain)
    payment = sign_payment(devchain, payer, requirements(devchain, address_of(new_key())))
    assert await _verify(client, payment.body()) == {"isValid": True, "payer": address_of(payer)}


async def test_bad_signature_wrong_terms_and_short_balance_are_invalid(
    client: TestClient[Any, Any], devchain: DevChain
) -> None:
    payer = await funded_payer(devchain, amount=20_000)
    req = requirements(devchain, address_of(new_key()))
    good = sign_payment(devchain, payer, req).body()
    # signed by another key than authorization.from
    forged = sign_payment(devchain, new_key(), req).body()
    forged["paymentPayload"]["payload"]["authorization"]["from"] = address_of(payer)
    assert (await _verify(client, forged))["invalidReason"] == "invalid_exact_evm_payload_signature"
    # a signed field changed after signing
    tampered = copy.deepcopy(good)
    tampered["paymentPayload"]["payload"]["authorization"]["validBefore"] = str(
        int(tampered["paymentPayload"]["payload"]["authorization"]["validBefore"]) + 1
    )
    assert (await _verify(client, tampered))["invalidReason"] == "invalid_exact_evm_payload_signature"
    # requirements the authorization does not meet
    other = copy.deepcopy(good)
    other["paymentRequirements"]["payTo"] = address_of(new_key())
    assert (await _verify(client, other))["invalidReason"] == "invalid_exact_evm_payload_recipient_mismatch"
    more = copy.deepcopy(good)
    more["paymentRequirements"]["amount"] = "10001"
    assert (await _verify(client, more))["invalidReason"] == "invalid_exact_evm_payload_authorization_value"
    expired = sign_payment(devchain, payer, req, valid_before=1).body()
    assert (await _verify(client, expired))["invalidReason"] == ("invalid_exact_evm_payload_authorization_valid_before")
    wrong_net = copy.deepcopy(good)
    wrong_net["paymentRequirements"]["network"] = "eip155:1"
    assert (await _verify(client, wrong_net))["invalidReason"] == "invalid_network"
    # correctly signed, but the payer holds less than the amount: only the node's simulation can tell
    poor = sign_payment(devchain, payer, requirements(devchain, address_of(new_key()), amount=30_000)).body()
    doc = await _verify(client, poor)
    assert (doc["isValid"], doc["invalidReason"]) == (False, "invalid_transaction_state")
    assert (await _verify(client, good))["isValid"] is True


async def test_used_nonce_is_invalid(client: TestClient[Any, Any], devchain: DevChain) -> None:
    payer = await funded_payer(devchain)
    payment = sign_payment(devchain, payer, requirements(devchain, address_of(new_key())))
    body = payment.body()
    assert (await _verify(client, body))["isValid"] is True
    # settle it on chain (the token's own transferWithAuthorization, sent by an impersonated account)
    auth = body["paymentPayload"]["payload"]["authorization"]
    sig = bytes.fromhex(body["paymentPayload"]["payload"]["signature"][2:])
    data = (
        lean.TRANSFER_SELECTOR
        + b"".join(bytes.fromhex(auth[k][2:]).rjust(32, b"\0") for k in ("from", "to"))
        + b"".join(int(auth[k]).to_bytes(32, "big") for k in ("value", "validAfter", "validBefore"))
        + bytes.fromhex(auth["nonce"][2:])
        + sig[64].to_bytes(32, "big")
        + sig[:64]
    )
    sender = "0x000000000000000000000000000000000000bEEF"
    await rpc(devchain.rpc_url, "anvil_impersonateAccount", sender)
    await fund_eth(devchain, sender)
    tx = await rpc(
        devchain.rpc_url,
        "eth_sendTransaction",
        {"from": sender, "to": devchain.token_address, "data": "0x" + data.hex()},
    )
    assert int((await wait_receipt(devchain, tx))["status"], 16) == 1
    doc = await _verify(client, body)
    assert (doc["isValid"], doc["invalidReason"], doc["payer"]) == (False, "invalid_transaction_state", payment.payer)


async def test_not_json_is_400(client: TestClient[Any, Any]) -> None:
    r = await client.post("/verify", data=b"{nope")
    assert r.status == 400
