"""Verify and settle through the HTTP facilitator on the real anvil chain, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec
import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.services import free_port


async def _app_client(aiohttp_client: Any, devchain: DevChain, database_url: str) -> tuple[Any, str]:
    return await evm.facilitator_client(aiohttp_client, devchain, database_url)


async def test_verify_settle_retry_and_duplicate(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client, signer = await _app_client(aiohttp_client, devchain, database_url)
    payer_key = await evm.funded_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    payment = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 12_345))

    r = await client.get("/supported")
    sup = await r.json()
    assert {"x402Version": 2, "scheme": "exact", "network": "eip155:31337"} in sup["kinds"]
    assert sup["signers"]["eip155:*"] == [signer]

    r = await client.post("/verify", json=payment.body())
    verified = await r.json()
    assert {k: v for k, v in verified.items() if k != "extensions"} == {"isValid": True, "payer": payment.payer}
    risk = verified["extensions"]["risk"]  # the risk assessment rides in the extension fields
    assert risk["recommendation"] == "accept"
    assert 0 <= risk["score"] <= 1

    r = await client.post("/settle", json=payment.body())
    out = await r.json()
    assert r.status == 200
    assert out["success"] is True, out
    assert out["network"] == "eip155:31337"
    assert out["payer"] == payment.payer
    assert out["transaction"].startswith("0x")
    assert len(out["transaction"]) == 66
    assert await evm.token_balance(devchain, pay_to) == 12_345
    sent = await evm.tx_count(devchain, signer)

    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT status, tx_id, amount FROM settlements")
    finally:
        await conn.close()
    assert row is not None
    assert (row["status"], row["tx_id"], int(row["amount"])) == ("confirmed", out["transaction"], 12_345)

    # the same payment again: no second success (one payment, one success), the original transaction named
    r = await client.post("/settle", json=payment.body())
    again = await r.json()
    assert again["success"] is False
    assert again["errorReason"] == "duplicate_settlement"
    assert again["transaction"] == out["transaction"]
    assert await evm.tx_count(devchain, signer) == sent

    # verify after settlement: the nonce is used on chain
    r = await client.post("/verify", json=payment.body())
    assert (await r.json())["invalidReason"] == "invalid_exact_evm_nonce_already_used"

    # another payment reusing the authorization nonce: duplicate
    nonce = payment.payload.payload["authorization"]["nonce"]
    other = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 5), nonce=nonce)
    r = await client.post("/settle", json=other.body())
    dup = await r.json()
    assert dup["success"] is False
    assert dup["errorReason"] == "duplicate_settlement"
    assert dup["transaction"] == ""
    assert await evm.tx_count(devchain, signer) == sent


async def test_v1_payload_settles(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client, _ = await _app_client(aiohttp_client, devchain, database_url)
    payment = await evm.new_payment(devchain, 777)
    pay_to = payment.requirements.pay_to
    req = payment.requirements
    v1_req = {
        "scheme": "exact",
        "network": req.network,  # no v1 name exists for 31337: CAIP-2 in the v1 field (our extension)
        "maxAmountRequired": req.amount,
        "resource": "http://127.0.0.1/paid",
        "description": "",
        "mimeType": "application/json",
        "payTo": req.pay_to,
        "maxTimeoutSeconds": 60,
        "asset": req.asset,
        "extra": req.extra,
    }
    body = {
        "x402Version": 1,
        "paymentPayload": {
            "x402Version": 1,
            "scheme": "exact",
            "network": req.network,
            "payload": payment.payload.payload,
        },
        "paymentRequirements": v1_req,
    }
    r = await client.post("/verify", json=body)
    assert (await r.json())["isValid"] is True
    r = await client.post("/settle", json=body)
    out = await r.json()
    assert out["success"] is True, out
    assert await evm.token_balance(devchain, pay_to) == 777


async def test_100_concurrent_settles_from_one_signer(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, signer = await _app_client(aiohttp_client, devchain, database_url)
    payer_key, req = await evm.payer_and_offer(devchain, 10)
    pay_to = req.pay_to
    payments = [evm.sign_payment(devchain, payer_key, req) for _ in range(100)]
    before = await evm.tx_count(devchain, signer)
    responses = await asyncio.gather(*(client.post("/settle", json=p.body()) for p in payments))
    results = [await r.json() for r in responses]
    failures = [r for r in results if not r["success"]]
    assert not failures, failures[:3]
    assert len({r["transaction"] for r in results}) == 100
    assert await evm.token_balance(devchain, pay_to) == 1000
    assert await evm.tx_count(devchain, signer) == before + 100


@pytest.mark.slow
async def test_50_concurrent_settles_of_one_payload_over_3_processes(devchain: DevChain, database_url: str) -> None:
    import aiohttp

    from tests.harness.procs import x402_serve

    key = evm.new_key()
    signer = evm.address_of(key)
    await evm.fund_eth(devchain, signer)
    payment = await evm.new_payment(devchain, 4242)
    pay_to = payment.requirements.pay_to
    env = {
        "DATABASE_URL": database_url,
        "X402_NETWORKS": evm.networks_env(devchain),
        "X402_EVM_SIGNER_KEY": key,
        "X402_REQUIRE_API_KEYS": "false",
        "X402_RECONCILE_INTERVAL": "0",
    }
    ports = [free_port() for _ in range(3)]
    async with (
        x402_serve(env=env, port=ports[0]) as a,
        x402_serve(env=env, port=ports[1]) as b,
        x402_serve(env=env, port=ports[2]) as c,
        aiohttp.ClientSession() as session,
    ):
        urls = [s.base_url + "/settle" for s in (a, b, c)]
        body = msgspec.json.encode(payment.body())
        headers = {"Content-Type": "application/json"}

        async def one(i: int) -> dict[str, Any]:
            async with session.post(urls[i % 3], data=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                doc: dict[str, Any] = await r.json()
                return doc

        results = await asyncio.gather(*(one(i) for i in range(50)))
    successes = [r for r in results if r["success"]]
    assert len(successes) == 1, [r for r in results if r["success"]]  # exactly one success across processes
    tx = successes[0]["transaction"]
    others = [r for r in results if not r["success"]]
    assert {r["errorReason"] for r in others} == {"duplicate_settlement"}, others[:3]
    assert {r["transaction"] for r in others} == {tx}  # every duplicate names the settlement
    assert await evm.tx_count(devchain, signer) == 1  # exactly one broadcast
    assert await evm.token_balance(devchain, pay_to) == 4242
