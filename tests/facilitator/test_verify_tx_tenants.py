"""verify-tx with API keys on: records per tenant, payTo claims proved by signature (EIP-191, ed25519), another
tenant's claimed payTo refused, and the risk stage in the answer — on the real chain and Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from eth_account import Account
from eth_account.messages import encode_defunct
from solders.keypair import Keypair

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.platform.conftest import ADMIN, bearer, new_key, new_tenant
from x402.service.app import create_app

VERIFY_TX = "/v1/payments/verify-tx"


async def _merchants(chain: DevChain, database_url: str, redis_url: str, aiohttp_client: Any) -> Any:
    """The service with API keys on and two tenants with a verify key each: (client, a, as_a, b, as_b)."""
    settings = evm.chain_settings(
        chain, database_url, evm.new_key(), require_api_keys=True, admin_token=ADMIN, redis_url=redis_url
    )
    client = await aiohttp_client(create_app(settings))
    a, as_a = await _tenant(client, "merchant-a")
    b, as_b = await _tenant(client, "tenant-b")
    return client, a, as_a, b, as_b


async def _tenant(client: Any, name: str) -> tuple[str, dict[str, str]]:
    tenant = await new_tenant(client, name, tier="enterprise")
    return tenant, bearer((await new_key(client, tenant, ["verify", "admin"]))["key"])


def _sign(key: str, message: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=message), key).signature).hex()


async def test_records_are_per_tenant(
    database_url: str, redis_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, a, as_a, b, as_b = await _merchants(devchain, database_url, redis_url, aiohttp_client)
    paid = await evm.paid_transfer(devchain)
    tx, body = paid.tx, paid.body

    r = await client.post(VERIFY_TX, json=body)
    assert (r.status, (await r.json())["code"]) == (401, "api_key_required")
    # B verifies A's customer's transaction first: that no longer uses it up for A
    out = await (await client.post(VERIFY_TX, json=body, headers=as_b)).json()
    assert out["verified"] is True, out
    out = await (await client.post(VERIFY_TX, json=body, headers=as_a)).json()
    assert out["verified"] is True, out
    out = await (await client.post(VERIFY_TX, json=body, headers=as_a)).json()
    assert (out["verified"], out["reason"]) == (False, "transaction_already_used")

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT tenant_id FROM verified_transactions WHERE tx_id = $1", tx.lower())
    finally:
        await conn.close()
    assert sorted(str(r["tenant_id"]) for r in rows) == sorted([a, b])


async def test_claimed_pay_to_is_refused_to_other_tenants(
    database_url: str, redis_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, a, as_a, b, as_b = await _merchants(devchain, database_url, redis_url, aiohttp_client)
    merchant_key = evm.new_key()
    pay_to = evm.address_of(merchant_key)

    # no signature: the answer names the exact message to sign (it names the tenant)
    r = await client.post("/v1/payto-claims", json={"address": pay_to}, headers=as_a)
    problem = await r.json()
    assert (r.status, problem["code"]) == (400, "claim_signature_required"), problem
    message = problem["message"]
    assert a in message
    assert pay_to.lower() in message
    r = await client.post(
        "/v1/payto-claims", json={"address": pay_to, "signature": _sign(evm.new_key(), message)}, headers=as_a
    )
    assert (r.status, (await r.json())["code"]) == (400, "invalid_claim_signature")
    r = await client.post("/v1/payto-claims", json={"address": pay_to, "signature": "0x" + "ab" * 10_000}, headers=as_a)
    assert (r.status, (await r.json())["code"]) == (400, "invalid_claim_signature")
    r = await client.post("/v1/payto-claims", json={"address": "0x1234", "signature": "0x00"}, headers=as_a)
    assert (r.status, (await r.json())["code"]) == (400, "invalid_address")
    signature = _sign(merchant_key, message)
    r = await client.post("/v1/payto-claims", json={"address": pay_to, "signature": signature}, headers=as_a)
    claim = await r.json()
    assert r.status == 201, claim
    assert (claim["address"], claim["proofKind"]) == (pay_to.lower(), "eip191")
    r = await client.post("/v1/payto-claims", json={"address": pay_to, "signature": signature}, headers=as_a)
    assert (r.status, (await r.json())["id"]) == (200, claim["id"])  # claiming again is idempotent

    # B cannot replay A's proof (it names A), and even a real proof for B loses to the first claimant
    r = await client.post("/v1/payto-claims", json={"address": pay_to, "signature": signature}, headers=as_b)
    assert (r.status, (await r.json())["code"]) == (400, "invalid_claim_signature")
    b_message = (await (await client.post("/v1/payto-claims", json={"address": pay_to}, headers=as_b)).json())[
        "message"
    ]
    assert b in b_message
    r = await client.post(
        "/v1/payto-claims", json={"address": pay_to, "signature": _sign(merchant_key, b_message)}, headers=as_b
    )
    assert (r.status, (await r.json())["code"]) == (409, "payto_claimed")

    tx = await evm.erc20_transfer(devchain, await evm.funded_payer(devchain), pay_to, 50_000)
    for variant in (pay_to, pay_to.lower(), "0x" + pay_to[2:].upper()):
        r = await client.post(VERIFY_TX, json=evm.verify_tx_body(devchain, tx, variant), headers=as_b)
        problem = await r.json()
        assert (r.status, problem["code"]) == (403, "payto_claimed"), problem
    out = await (await client.post(VERIFY_TX, json=evm.verify_tx_body(devchain, tx, pay_to), headers=as_a)).json()
    assert out["verified"] is True, out

    # claims are A's objects: B lists none and cannot delete A's (404)
    assert (await (await client.get("/v1/payto-claims", headers=as_b)).json())["data"] == []
    r = await client.delete(f"/v1/payto-claims/{claim['id']}", headers=as_b)
    assert (r.status, (await r.json())["code"]) == (404, "not_found")
    assert [c["id"] for c in (await (await client.get("/v1/payto-claims", headers=as_a)).json())["data"]] == [
        claim["id"]
    ]
    r = await client.delete(f"/v1/payto-claims/{uuid.uuid4()}", headers=as_a)
    assert r.status == 404
    assert (await client.delete(f"/v1/payto-claims/{claim['id']}", headers=as_a)).status == 204
    # released: B may verify (and record for itself) again
    out = await (await client.post(VERIFY_TX, json=evm.verify_tx_body(devchain, tx, pay_to), headers=as_b)).json()
    assert out["verified"] is True, out


async def test_solana_claims_use_ed25519(
    database_url: str, redis_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, _, as_a, _, as_b = await _merchants(devchain, database_url, redis_url, aiohttp_client)
    merchant = Keypair()
    address = str(merchant.pubkey())
    message = (await (await client.post("/v1/payto-claims", json={"address": address}, headers=as_a)).json())["message"]
    wrong = str(Keypair().sign_message(message.encode()))
    r = await client.post("/v1/payto-claims", json={"address": address, "signature": wrong}, headers=as_a)
    assert (r.status, (await r.json())["code"]) == (400, "invalid_claim_signature")
    good = str(merchant.sign_message(message.encode()))
    r = await client.post("/v1/payto-claims", json={"address": address, "signature": good}, headers=as_a)
    claim = await r.json()
    assert r.status == 201, claim
    assert (claim["address"], claim["proofKind"]) == (address, "ed25519")
    # the claim is checked before any chain work: B is refused even for a network this service does not serve
    r = await client.post(
        VERIFY_TX,
        json={
            "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
            "transaction": "5" * 88,
            "payTo": address,
            "asset": str(Keypair().pubkey()),
            "minAmount": "1",
        },
        headers=as_b,
    )
    assert (r.status, (await r.json())["code"]) == (403, "payto_claimed")


async def test_verify_tx_runs_the_risk_stage(
    database_url: str, redis_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, _, as_a, _, as_b = await _merchants(devchain, database_url, redis_url, aiohttp_client)
    paid = await evm.paid_transfer(devchain)
    payer, body = evm.address_of(paid.payer_key), paid.body

    r = await client.post("/v1/risk/lists/deny", json={"addresses": [payer], "label": "chargebacks"}, headers=as_a)
    assert r.status == 200, await r.text()
    out = await (await client.post(VERIFY_TX, json=body, headers=as_a)).json()
    assert (out["verified"], out["status"], out["reason"]) == (False, "invalid", "risk_blocked"), out
    assert out["risk"]["recommendation"] == "block"
    assert any(f["code"].startswith("deny") for f in out["risk"]["flags"])
    # A's deny list is A's: B's answer carries a clean assessment
    out = await (await client.post(VERIFY_TX, json=body, headers=as_b)).json()
    assert out["verified"] is True, out
    assert out["risk"]["recommendation"] == "accept"
    assert 0 < out["risk"]["score"] <= 1
    # a blocked transaction was not used up: once the payer is off the list, A may accept it
    r = await client.request("DELETE", "/v1/risk/lists/deny", json={"addresses": [payer]}, headers=as_a)
    assert r.status == 200
    out = await (await client.post(VERIFY_TX, json=body, headers=as_a)).json()
    assert out["verified"] is True, out
    assert out["risk"]["recommendation"] == "accept"
