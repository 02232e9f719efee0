"""Nonce lanes on a real anvil: no reserved signer nonce is left unused, stuck transactions are bumped, several keys."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import secrets
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from chains.evm.adapter import EvmAdapter
from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.rpcproxy import rpc_proxy
from tests.harness.services import free_port
from x402.service.app import create_app
from x402.service.appkeys import CHAINS, FACILITATOR, RECONCILER
from x402.service.facilitator.reconciler import Reconciler

OPEN = ("claimed", "submitted", "pending")


@pytest.fixture
async def own_chain() -> AsyncIterator[DevChain]:
    """A private anvil with the dev token: these tests warp its clock, change its base fee and stop its mining."""
    async with evm.own_devchain() as chain:
        yield chain


async def _chain_time(chain: DevChain) -> int:
    return int((await evm.rpc(chain.rpc_url, "eth_getBlockByNumber", "latest", False))["timestamp"], 16)


async def _expire(chain: DevChain, seconds: int) -> None:
    await evm.rpc(chain.rpc_url, "evm_increaseTime", seconds)
    await evm.rpc(chain.rpc_url, "evm_mine")


async def _rows(url: str, sql: str = "SELECT * FROM settlements ORDER BY id") -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _wait(cond: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.1)


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.slow
async def test_kill9_between_journal_and_broadcast_restart_after_expiry(own_chain: DevChain, database_url: str) -> None:
    """The crashed settlement's nonce is filled at start-up; later settlements confirm; nothing is paid twice."""
    chain = own_chain
    key, signer = await evm.funded_signer(chain)
    payer_key = await evm.funded_payer(chain)
    pay_to = evm.address_of(evm.new_key())
    env = {
        "DATABASE_URL": database_url,
        "X402_EVM_SIGNER_KEY": key,
        "X402_REQUIRE_API_KEYS": "false",
        "X402_RECONCILE_INTERVAL": "0",
        "X402_RPC_TIMEOUT": "120",
    }
    # the node never receives the broadcast: the process dies after journalling, before the node answered
    async with rpc_proxy(chain.rpc_url, {"eth_sendRawTransaction"}) as proxy:
        env["X402_NETWORKS"] = evm.networks_env(dataclasses.replace(chain, rpc_url=proxy.url))
        async with x402_serve(env=env, port=free_port()) as first, aiohttp.ClientSession() as session:
            # short-lived, so that after the crash it expires by the wall clock and by the chain's
            valid_before = int(time.time()) + 15
            req = evm.requirements(chain, pay_to, 1_111)
            crashed = evm.sign_payment(chain, payer_key, req, valid_before=valid_before)
            body = msgspec.json.encode(crashed.body())
            request = asyncio.ensure_future(
                session.post(first.base_url + "/settle", data=body, headers={"Content-Type": "application/json"})
            )
            await asyncio.wait_for(proxy.held.wait(), 60)
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
            with contextlib.suppress(aiohttp.ClientError):
                await request
    [row] = await _rows(database_url)
    assert (row["status"], row["signer_nonce"]) == ("submitted", 0)
    assert row["raw_tx"] is not None
    assert await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", row["tx_id"]) is None
    await asyncio.sleep(max(0.0, valid_before + 1 - time.time()))  # restart after the payment's validBefore
    await _expire(chain, 600)
    assert await _chain_time(chain) > valid_before

    env["X402_NETWORKS"] = evm.networks_env(chain)
    env["X402_RECONCILE_INTERVAL"] = "0.2"
    env["X402_SETTLE_TIMEOUT"] = "20"
    amounts = [101, 202, 303]
    async with x402_serve(env=env, port=free_port()) as second, aiohttp.ClientSession() as session:

        async def closed() -> bool:
            status: str = (await _rows(database_url))[0]["status"]
            return status == "failed"

        await _wait(closed)  # reconciled at start-up: the gap is filled, the expired row closed
        for amount in amounts:
            req = evm.requirements(chain, pay_to, amount)
            payment = evm.sign_payment(chain, payer_key, req, valid_before=await _chain_time(chain) + 600)
            async with session.post(second.base_url + "/settle", json=payment.body()) as r:
                out = await r.json()
            assert out["success"] is True, out
        async with session.get(second.base_url + "/metrics") as r:
            metrics = await r.text()
    rows = await _rows(database_url)
    assert [r["status"] for r in rows] == ["failed", "confirmed", "confirmed", "confirmed"]
    assert rows[0]["error_reason"] == "invalid_exact_evm_payload_authorization_valid_before"
    assert sorted(r["signer_nonce"] for r in rows[1:]) == [1, 2, 3]
    [fill] = await _rows(database_url, "SELECT * FROM nonce_fills")
    assert (fill["nonce"], fill["status"], fill["settlement_id"]) == (0, "confirmed", rows[0]["id"])
    receipt = await evm.rpc(chain.rpc_url, "eth_getTransactionReceipt", fill["tx_id"])
    tx = await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", fill["tx_id"])
    assert int(receipt["status"], 16) == 1
    assert (tx["to"].lower(), int(tx["value"], 16), int(tx["nonce"], 16)) == (signer.lower(), 0, 0)
    assert await evm.tx_count(chain, signer) == 4  # the gap nonce and three settlements, nothing else
    assert await evm.token_balance(chain, pay_to) == sum(amounts)  # the expired payment was never paid
    assert _metric(metrics, "x402_nonce_repairs_total", action="fill") == 1.0
    assert (_metric(metrics, "x402_signer_nonce", signer=signer, source="mined") or 0) >= 1


async def _journalled(payment: Any, service: Any) -> tuple[Any, int]:
    """The payment routed and claimed in the journal, as a settle does before it signs (the row id)."""
    routed = service.route(payment.payload, payment.requirements)
    row_id = await service.journal.claim(
        routed.adapter.replay_key(routed.ctx),
        digest=secrets.token_bytes(32),
        pay_to=routed.ctx.requirements.pay_to,
        amount=int(routed.ctx.requirements.amount),
        x402_version=2,
        payload=dict(routed.ctx.payload),
        requirements=msgspec.to_builtins(routed.ctx.requirements),
    )
    assert row_id is not None
    return routed, row_id


async def _settled_rows(reconciler: Reconciler, database_url: str) -> list[Any]:
    """The journal once no row is open: more reconciler passes while a receipt is still on its way (busy box)."""
    for _ in range(50):
        rows = await _rows(database_url)
        if all(r["status"] not in ("claimed", "submitted", "pending") for r in rows):
            return rows
        await reconciler.run_once()
        await asyncio.sleep(0.1)
    return await _rows(database_url)


async def test_next_settlement_reuses_the_nonce_of_an_expired_unsent_one(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    """With no reconciler running, the next settlement takes the dead nonce itself instead of waiting behind it."""
    chain = own_chain
    client, signer = await evm.facilitator_client(aiohttp_client, chain, database_url, settle_timeout=20)
    service = client.server.app[FACILITATOR]
    payer_key = await evm.funded_payer(chain)
    pay_to = evm.address_of(evm.new_key())
    crashed = evm.sign_payment(
        chain, payer_key, evm.requirements(chain, pay_to, 999), valid_before=await _chain_time(chain) + 60
    )
    # the state a crash leaves: claimed, signed and journalled at nonce 0, never broadcast
    routed, row_id = await _journalled(crashed, service)
    prepared = await service.lanes.reserve(row_id, routed.ctx, routed.adapter, signer)
    assert prepared.signer_nonce == 0
    await _expire(chain, 120)

    valid_before = await _chain_time(chain) + 600
    payments = [
        evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 10), valid_before=valid_before)
        for _ in range(10)
    ]
    responses = await asyncio.gather(*(client.post("/settle", json=p.body()) for p in payments))
    results = [await r.json() for r in responses]
    assert all(r["success"] for r in results), results
    rows = await _rows(database_url)
    assert (rows[0]["status"], rows[0]["signer_nonce"]) == ("failed", 0)
    assert "reused" in rows[0]["error_message"]
    assert sorted(r["signer_nonce"] for r in rows[1:]) == list(range(10))  # nonce 0 reused, no gap, no collision
    assert {r["status"] for r in rows[1:]} == {"confirmed"}
    assert await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", prepared.tx_id) is None
    assert await evm.tx_count(chain, signer) == 10
    assert await evm.token_balance(chain, pay_to) == 100
    assert await _rows(database_url, "SELECT * FROM nonce_fills") == []


async def test_unsent_transaction_still_valid_is_sent_by_the_reconciler(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    """Restart before expiry: the journalled transaction itself is sent, exactly once, and its nonce is not reused."""
    chain = own_chain
    client, signer = await evm.facilitator_client(aiohttp_client, chain, database_url)
    service = client.server.app[FACILITATOR]
    payer_key = await evm.funded_payer(chain)
    pay_to = evm.address_of(evm.new_key())
    crashed = evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 55))
    routed, row_id = await _journalled(crashed, service)
    prepared = await service.lanes.reserve(row_id, routed.ctx, routed.adapter, signer)
    reconciler: Reconciler = client.server.app[RECONCILER]
    await reconciler.run_once()
    [row] = await _settled_rows(reconciler, database_url)
    assert (row["status"], row["tx_id"], row["signer_nonce"]) == ("confirmed", prepared.tx_id, 0)
    later = evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 5))
    assert (await (await client.post("/settle", json=later.body())).json())["success"] is True
    assert [r["signer_nonce"] for r in await _rows(database_url)] == [0, 1]
    assert await evm.tx_count(chain, signer) == 2
    assert await evm.token_balance(chain, pay_to) == 60


async def test_nonce_taken_by_another_transaction_is_signed_again_while_valid(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    """The signer key used elsewhere took the journalled nonce: the still valid payment is re-signed, paid once."""
    from eth_account import Account

    chain = own_chain
    key, signer = await evm.funded_signer(chain)
    client = await aiohttp_client(create_app(evm.chain_settings(chain, database_url, key)))
    service = client.server.app[FACILITATOR]
    payment = await evm.new_payment(chain, 66)
    pay_to = payment.requirements.pay_to
    routed, row_id = await _journalled(payment, service)
    first = await service.lanes.reserve(row_id, routed.ctx, routed.adapter, signer)
    other = Account.from_key(key).sign_transaction(
        {"chainId": chain.chain_id, "nonce": 0, "to": signer, "value": 0, "gas": 21_000, "gasPrice": 10**10}
    )
    sent = await evm.rpc(chain.rpc_url, "eth_sendRawTransaction", "0x" + bytes(other.raw_transaction).hex())
    await evm.wait_receipt(chain, sent)
    assert await evm.tx_count(chain, signer) == 1
    reconciler: Reconciler = client.server.app[RECONCILER]
    done = await reconciler.run_once()
    assert done.get("resigned") == 1, done
    [row] = await _settled_rows(reconciler, database_url)
    assert (row["status"], row["signer_nonce"]) == ("confirmed", 1)
    assert first.tx_id in list(row["replaced_tx_ids"])
    assert await evm.token_balance(chain, pay_to) == 66
    assert await evm.tx_count(chain, signer) == 2


async def test_gap_the_signer_cannot_fill_is_reported_then_repaired(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    """A settlement queued behind a dead nonce while the signer has no gas: stuck with reasons, then repaired."""
    chain = own_chain
    key, signer = await evm.funded_signer(chain)
    settings = evm.chain_settings(chain, database_url, key, settle_timeout=0.5, settle_stuck_after=0)
    client = await aiohttp_client(create_app(settings))
    service = client.server.app[FACILITATOR]
    payer_key = await evm.funded_payer(chain)
    pay_to = evm.address_of(evm.new_key())
    now = await _chain_time(chain)
    dead = evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 7), valid_before=now + 60)
    routed, dead_id = await _journalled(dead, service)
    await service.lanes.reserve(dead_id, routed.ctx, routed.adapter, signer)  # nonce 0, never broadcast
    queued = evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 8), valid_before=now + 3600)
    out = await (await client.post("/settle", json=queued.body())).json()
    assert out["errorReason"] == "settlement_pending", out  # nonce 1 waits behind nonce 0
    await _expire(chain, 120)
    await evm.rpc(chain.rpc_url, "anvil_setBalance", signer, "0x0")
    reconciler: Reconciler = client.server.app[RECONCILER]
    done = await reconciler.run_once()
    assert done.get("lane_signer_out_of_gas", 0) >= 1, done
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "x402_settlement_stuck", network=chain.network, reason="expired_unsent") == 1.0
    queued_reasons = {
        r: _metric(metrics, "x402_settlement_stuck", network=chain.network, reason=r)
        for r in ("nonce_gap", "signer_out_of_gas")
    }
    assert sum(v or 0 for v in queued_reasons.values()) == 1.0, queued_reasons
    assert (_metric(metrics, "x402_signer_out_of_gas_total", network=chain.network, signer=signer) or 0) >= 1
    assert [r["status"] for r in await _rows(database_url)] == ["pending", "pending"]

    await evm.fund_eth(chain, signer)  # the operator tops the signer up
    for _ in range(3):
        await reconciler.run_once()
    rows = await _rows(database_url)
    assert [(r["status"], r["signer_nonce"]) for r in rows] == [("failed", 0), ("confirmed", 1)]
    [fill] = await _rows(database_url, "SELECT * FROM nonce_fills")
    assert (fill["nonce"], fill["status"]) == (0, "confirmed")
    assert await evm.tx_count(chain, signer) == 2
    assert await evm.token_balance(chain, pay_to) == 8
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "x402_settlement_stuck", network=chain.network, reason="expired_unsent") is None


async def _pending_settlement(chain: DevChain, database_url: str, aiohttp_client: Any) -> tuple[Any, str, str, int]:
    """Settle one payment with mining stopped: it answers settlement_pending and its tx waits in the pool."""
    key, signer = await evm.funded_signer(chain)
    settings = evm.chain_settings(chain, database_url, key, settle_timeout=0.3, settle_stuck_after=0)
    client = await aiohttp_client(create_app(settings))
    payment = await evm.new_payment(chain, 4_321)
    pay_to = payment.requirements.pay_to
    await evm.rpc(chain.rpc_url, "evm_setAutomine", False)
    r = await client.post("/settle", json=payment.body())
    out = await r.json()
    assert out["errorReason"] == "settlement_pending", out
    assert await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", out["transaction"]) is not None
    return client, signer, pay_to, 4_321


async def test_transaction_evicted_as_underpriced_is_replaced_with_a_gas_bump(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    chain = own_chain
    client, signer, pay_to, amount = await _pending_settlement(chain, database_url, aiohttp_client)
    [row] = await _rows(database_url)
    original = row["tx_id"]
    # the base fee jumps above the transaction's fee cap: the node drops it and refuses the same bytes again
    await evm.rpc(chain.rpc_url, "anvil_setNextBlockBaseFeePerGas", hex(10**12))
    await evm.rpc(chain.rpc_url, "evm_mine")
    assert await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", original) is None
    reconciler: Reconciler = client.server.app[RECONCILER]
    done = await reconciler.run_once()
    # the lane pass or the row pass (whichever looks first) re-signs it with higher fees, once
    assert done.get("lane_gas_bump", 0) + done.get("gas_bump", 0) == 1, done
    [row] = await _rows(database_url)
    assert row["tx_id"] != original
    assert list(row["replaced_tx_ids"]) == [original]
    assert row["signer_nonce"] == 0
    await evm.rpc(chain.rpc_url, "evm_mine")
    await reconciler.run_once()
    [row] = await _rows(database_url)
    assert row["status"] == "confirmed"
    receipt = await evm.rpc(chain.rpc_url, "eth_getTransactionReceipt", row["tx_id"])
    assert int(receipt["status"], 16) == 1
    assert await evm.tx_count(chain, signer) == 1
    assert await evm.token_balance(chain, pay_to) == amount
    metrics = await (await client.get("/metrics")).text()
    assert (_metric(metrics, "x402_nonce_repairs_total", action="gas_bump") or 0) >= 1


async def test_fees_refused_at_broadcast_are_bumped_before_answering(
    own_chain: DevChain, database_url: str, aiohttp_client: Any
) -> None:
    chain = own_chain
    client, signer = await evm.facilitator_client(aiohttp_client, chain, database_url, settle_timeout=20)
    adapter = client.server.app[CHAINS].find(chain.network)
    assert isinstance(adapter, EvmAdapter)
    payer_key = await evm.funded_payer(chain)
    pay_to = evm.address_of(evm.new_key())
    first = evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 1))
    assert (await (await client.post("/settle", json=first.body())).json())["success"] is True
    # a stale fee estimate meets a base fee that jumped: the node refuses the signed transaction's fee cap
    settler = adapter.settler
    settler._fees[chain.network] = dataclasses.replace(settler._fees[chain.network], expires=time.monotonic() + 600)
    await evm.rpc(chain.rpc_url, "anvil_setNextBlockBaseFeePerGas", hex(10**12))
    await evm.rpc(chain.rpc_url, "evm_mine")
    second = evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 2))
    out = await (await client.post("/settle", json=second.body())).json()
    assert out["success"] is True, out
    rows = await _rows(database_url)
    assert rows[1]["tx_id"] == out["transaction"]
    [refused] = rows[1]["replaced_tx_ids"]
    assert await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", refused) is None
    assert await evm.tx_count(chain, signer) == 2
    assert await evm.token_balance(chain, pay_to) == 3
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "x402_nonce_repairs_total", action="gas_bump") == 1.0


async def test_stuck_transaction_is_bumped_and_reported(
    own_chain: DevChain, database_url: str, aiohttp_client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    chain = own_chain
    client, signer, pay_to, amount = await _pending_settlement(chain, database_url, aiohttp_client)
    [row] = await _rows(database_url)
    original = row["tx_id"]
    reconciler: Reconciler = client.server.app[RECONCILER]
    done = await reconciler.run_once()  # stuck past the bound (0 s here) while the node holds it unmined
    assert done.get("lane_gas_bump") == 1, done
    [row] = await _rows(database_url)
    assert row["status"] == "pending"
    assert list(row["replaced_tx_ids"]) == [original]
    bumped = await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", row["tx_id"])
    old = await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", original)
    assert old is None  # the node replaced it
    assert int(bumped["maxFeePerGas"], 16) > 0
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "x402_settlement_stuck", network=chain.network, reason="not_mined") == 1.0
    assert (_metric(metrics, "x402_settlement_oldest_pending_seconds", network=chain.network) or -1) >= 0
    captured = capfd.readouterr()
    stuck = [x for x in (captured.out + captured.err).splitlines() if "settlement_stuck" in x]
    assert stuck, "no settlement_stuck log line"
    assert "not_mined" in stuck[-1]
    assert re.search(rf"settlement_id\W+{row['id']}\b", stuck[-1]), stuck[-1]
    await evm.rpc(chain.rpc_url, "evm_mine")
    await reconciler.run_once()
    [row] = await _rows(database_url)
    assert row["status"] == "confirmed"
    assert await evm.tx_count(chain, signer) == 1
    assert await evm.token_balance(chain, pay_to) == amount
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "x402_settlement_stuck", network=chain.network, reason="not_mined") is None


async def test_two_signer_keys_round_robin(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    (k1, a1), (k2, a2) = await evm.funded_signer(devchain), await evm.funded_signer(devchain)
    settings = evm.chain_settings(devchain, database_url, k1).with_(evm_signer_key=None, evm_signer_keys=(k1, k2))
    client = await aiohttp_client(create_app(settings))
    sup = await (await client.get("/supported")).json()
    assert sup["signers"]["eip155:*"] == [a1, a2]
    payer_key, req = await evm.payer_and_offer(devchain, 5)
    pay_to = req.pay_to
    for _ in range(4):
        payment = evm.sign_payment(devchain, payer_key, req)
        assert (await (await client.post("/settle", json=payment.body())).json())["success"] is True
    rows = await _rows(database_url)
    assert [r["signer"] for r in rows] == [a1, a2, a1, a2]
    assert [r["signer_nonce"] for r in rows] == [0, 0, 1, 1]  # a nonce lane per key
    payments = [evm.sign_payment(devchain, payer_key, req) for _ in range(20)]
    results = await asyncio.gather(*(client.post("/settle", json=p.body()) for p in payments))
    assert all([(await r.json())["success"] for r in results])
    assert await evm.tx_count(devchain, a1) == 12
    assert await evm.tx_count(devchain, a2) == 12
    assert await evm.token_balance(devchain, pay_to) == 24 * 5


async def test_signer_out_of_gas_is_classified(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    broke = evm.new_key()
    signer = evm.address_of(broke)
    await evm.rpc(devchain.rpc_url, "anvil_setBalance", signer, "0x0")
    client = await aiohttp_client(create_app(evm.chain_settings(devchain, database_url, broke)))
    payment = await evm.new_payment(devchain, 77)
    pay_to = payment.requirements.pay_to
    r = await client.post("/settle", json=payment.body())
    assert r.status == 503
    assert r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["code"] == "signer_out_of_gas"
    assert problem["dependency"] == f"signer:{devchain.network}"
    assert problem["signer"] == signer
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "x402_signer_out_of_gas_total", network=devchain.network, signer=signer) == 1.0
    assert _metric(metrics, "x402_payments_total", op="settle", outcome="signer_out_of_gas") == 1.0
    assert await _rows(database_url) == []  # nothing was sent: the claim is dropped so the payment can be retried
    assert await evm.tx_count(devchain, signer) == 0
    await evm.fund_eth(devchain, signer)
    out = await (await client.post("/settle", json=payment.body())).json()
    assert out["success"] is True, out
    assert await evm.token_balance(devchain, pay_to) == 77


async def test_out_of_gas_signer_hands_over_to_the_next_key(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    broke = evm.new_key()
    funded, funded_addr = await evm.funded_signer(devchain)
    settings = evm.chain_settings(devchain, database_url, broke).with_(evm_signer_keys=(funded,))
    client = await aiohttp_client(create_app(settings))
    payer_key, req = await evm.payer_and_offer(devchain, 3)
    for _ in range(2):
        payment = evm.sign_payment(devchain, payer_key, req)
        out = await (await client.post("/settle", json=payment.body())).json()
        assert out["success"] is True, out
    assert [r["signer"] for r in await _rows(database_url)] == [funded_addr, funded_addr]
    metrics = await (await client.get("/metrics")).text()
    # found out of gas once, the empty key is then passed over instead of being tried on its every turn
    assert _metric(metrics, "x402_signer_out_of_gas_total", signer=evm.address_of(broke)) == 1.0


async def test_node_refusing_gas_money_is_signer_out_of_gas(devchain: DevChain) -> None:
    """The broadcast-time answer ("insufficient funds for gas * price + value") is classified too."""
    from eth_account import Account

    from chains.base import PreparedSettlement, SignerOutOfGas
    from chains.evm.adapter import EvmAdapter

    key = evm.new_key()
    adapter = EvmAdapter([evm.dev_network(devchain)], signer_key=key)
    try:
        account = Account.from_key(key)
        signed = account.sign_transaction(
            {"chainId": devchain.chain_id, "nonce": 0, "to": account.address, "value": 0, "gas": 21_000}
            | {"type": 2, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
        )
        prepared = PreparedSettlement(
            "0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), account.address, 0
        )
        with pytest.raises(SignerOutOfGas) as err:
            await adapter.broadcast(devchain.network, prepared)
        assert err.value.status == 503
        assert err.value.signer == account.address
    finally:
        await adapter.close()


def test_signer_keys_settings_keep_the_single_key_setting() -> None:
    from chains.evm.adapter import create_adapter
    from x402.service.settings import load_settings

    k0, k1, k2 = evm.new_key(), evm.new_key(), evm.new_key()
    env = {
        "X402_EVM_SIGNER_KEY": k0,
        "X402_EVM_SIGNER_KEYS": f"{k1}, {k2},{k0}",
        "X402_NETWORKS": json.dumps({"eip155:31337": {"rpc_urls": ["http://127.0.0.1:1"]}}),
    }
    settings = load_settings(env)
    adapter = create_adapter(settings.chain_options(), list(settings.networks))
    assert adapter is not None
    assert adapter.signers() == {"eip155:*": [evm.address_of(k) for k in (k0, k1, k2)]}
    only = load_settings({k: v for k, v in env.items() if k != "X402_EVM_SIGNER_KEYS"})
    single = create_adapter(only.chain_options(), list(only.networks))
    assert single is not None
    assert single.signers() == {"eip155:*": [evm.address_of(k0)]}
    assert k1 not in repr(settings)
    assert settings.settle_stuck_after == 120.0
    assert load_settings({"X402_SETTLE_STUCK_AFTER": "30"}).settle_stuck_after == 30.0
