"""RPC failover seen through HTTP, and verify-by-transaction on the real chain."""

from __future__ import annotations

from typing import Any

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.services import free_port
from x402.service.app import create_app


async def test_dead_first_rpc_then_all_dead(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    key = evm.new_key()
    payer_key = await evm.funded_payer(devchain)
    payment = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, evm.address_of(evm.new_key())))

    settings = evm.chain_settings(devchain, database_url, key, rpc_timeout=1.0)
    settings = settings.with_(networks=(evm.dev_network(devchain, (dead, devchain.rpc_url)),))
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/verify", json=payment.body())
    assert r.status == 200
    assert (await r.json())["isValid"] is True

    settings = settings.with_(networks=(evm.dev_network(devchain, (dead, f"http://127.0.0.1:{free_port()}")),))
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/verify", json=payment.body())
    problem = await r.json()
    assert r.status == 503, problem
    assert problem["code"] == "chain_unavailable"
    r = await client.get("/readyz")
    assert r.status == 503
    assert (await r.json())["checks"]["chains"] == {"eip155:31337": False}


async def test_verify_tx(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client = await aiohttp_client(create_app(evm.chain_settings(devchain, database_url, evm.new_key())))
    paid = await evm.paid_transfer(devchain)
    payer_key, pay_to, body = paid.payer_key, paid.pay_to, paid.body
    r = await client.post("/v1/payments/verify-tx", json=body)
    out = await r.json()
    assert r.status == 200, out
    assert out["verified"] is True, out
    assert out["amount"] == "50000"
    assert out["payer"].lower() == evm.address_of(payer_key).lower()

    # replayed: accepted once per payTo
    r = await client.post("/v1/payments/verify-tx", json=body)
    out = await r.json()
    assert out["verified"] is False
    assert out["reason"] == "transaction_already_used"

    # wrong recipient
    r = await client.post("/v1/payments/verify-tx", json={**body, "payTo": evm.address_of(evm.new_key())})
    out = await r.json()
    assert out["verified"] is False
    assert out["status"] == "invalid"

    # too few confirmations: pending until enough blocks are mined
    tx2 = await evm.erc20_transfer(devchain, payer_key, pay_to, 50_000)
    deep = {**body, "transaction": tx2, "confirmations": 5}
    r = await client.post("/v1/payments/verify-tx", json=deep)
    out = await r.json()
    assert out["verified"] is False
    assert out["status"] == "pending"
    await evm.rpc(devchain.rpc_url, "anvil_mine", hex(5))
    r = await client.post("/v1/payments/verify-tx", json=deep)
    out = await r.json()
    assert out["verified"] is True, out
    assert out["confirmations"] >= 5
