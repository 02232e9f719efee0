"""The HTTP facilitator on the SVM (LiteSVM shim): /supported, verify + settle exactly once, verify-tx."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import asyncpg
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from chains.config import AssetConfig, NetworkConfig
from chains.solana.payer import create_payment, transfer_checked_ix
from tests.solana.conftest import NETWORK, PRICE, START_BALANCE, World
from x402.service.app import create_app
from x402.service.settings import Settings
from x402.wire import reasons as R
from x402.wire.models import PaymentRequirements, encode_json

ClientFactory = Any


def facilitator_settings(w: World, database_url: str, data_dir: Path) -> Settings:
    """An app on the shim's chain with the world's fee payer (no reconciler: each test drives settlement itself)."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        log_level="warning",
        networks=(NetworkConfig(NETWORK, (w.rpc.url,), assets=(AssetConfig(str(w.mint), symbol="USDC"),)),),
        svm_fee_payer_keys=(str(w.fee_payer),),
        reconcile_interval=0,
        settle_timeout=5.0,
    )


def wire(reqs: PaymentRequirements) -> dict[str, Any]:
    """Requirements as their JSON document (camelCase)."""
    doc: dict[str, Any] = json.loads(encode_json(reqs))
    return doc


def body(payload: dict[str, Any], reqs: PaymentRequirements) -> dict[str, Any]:
    """A v2 /verify or /settle request body."""
    accepted = wire(reqs)
    return {
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": accepted, "payload": payload},
        "paymentRequirements": accepted,
    }


async def settlement_rows(database_url: str) -> list[asyncpg.Record]:
    """Every row of the settlement journal."""
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch("SELECT * FROM settlements ORDER BY id"))
    finally:
        await conn.close()


async def _client_and_payment(
    w: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> tuple[Any, PaymentRequirements, dict[str, Any]]:
    """The facilitator app on the world's chain, and the payer's signed payment of the default requirements."""
    client = await aiohttp_client(create_app(facilitator_settings(w, database_url, tmp_path)))
    reqs = w.requirements()
    return client, reqs, await create_payment(w.rpc.url, w.payer, reqs)


async def test_supported_lists_solana(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(facilitator_settings(world, database_url, tmp_path)))
    r = await client.get("/supported")
    sup = await r.json()
    assert r.status == 200, sup
    fee_payer = str(world.fee_payer.pubkey())
    assert {"x402Version": 2, "scheme": "exact", "network": NETWORK, "extra": {"feePayer": fee_payer}} in sup["kinds"]
    assert {"x402Version": 1, "scheme": "exact", "network": "solana-devnet", "extra": {"feePayer": fee_payer}} in sup[
        "kinds"
    ]
    assert sup["signers"]["solana:*"] == [fee_payer]


async def test_verify_settle_once_and_duplicates(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    w = world
    client, reqs, payload = await _client_and_payment(w, database_url, tmp_path, aiohttp_client)
    payer = str(w.payer.pubkey())
    payer_sol = w.rpc.svm.get_balance(w.payer.pubkey())

    r = await client.post("/verify", json=body(payload, reqs))
    verified = await r.json()
    assert r.status == 200, verified
    assert {k: v for k, v in verified.items() if k != "extensions"} == {"isValid": True, "payer": payer}
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == 0  # verify moves nothing

    r = await client.post("/settle", json=body(payload, reqs))
    out = await r.json()
    assert r.status == 200, out
    assert out["success"] is True, out
    assert out["network"] == NETWORK
    assert out["payer"] == payer
    assert out["amount"] == str(PRICE)
    tx = VersionedTransaction.from_bytes(base64.b64decode(payload["transaction"]))
    signature = Signature.from_string(out["transaction"])  # base58 signature: the fee payer's (first) one
    assert signature.verify(w.fee_payer.pubkey(), to_bytes_versioned(tx.message))
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    assert w.rpc.token_balance(w.ata(w.payer.pubkey())) == START_BALANCE - PRICE
    assert w.rpc.svm.get_balance(w.payer.pubkey()) == payer_sol  # the fee payer paid the fee, not the payer
    sends = w.rpc.calls.count("sendTransaction")
    assert sends == 1

    (row,) = await settlement_rows(database_url)
    assert row["status"] == "confirmed"
    assert row["tx_id"] == out["transaction"]
    assert row["network"] == NETWORK
    assert row["asset"] == str(w.mint)
    assert row["payer"] == payer
    assert row["nonce"] == str(tx.message.hash())
    assert row["signer"] == str(w.fee_payer.pubkey())
    assert int(row["amount"]) == PRICE

    # the same payment again: no second success, its transaction named, nothing sent
    r = await client.post("/settle", json=body(payload, reqs))
    again = await r.json()
    assert (again["success"], again["errorReason"], again["transaction"]) == (
        False,
        "duplicate_settlement",
        out["transaction"],
    )
    assert w.rpc.calls.count("sendTransaction") == sends

    # verify after settlement: the transaction has been processed, simulation refuses it
    r = await client.post("/verify", json=body(payload, reqs))
    late = await r.json()
    assert late["isValid"] is False
    assert late["invalidReason"] == R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED

    # the same transaction under other requirements (same replay key, other payment hash): duplicate
    other_reqs = w.requirements(max_timeout_seconds=120)
    r = await client.post("/settle", json=body(payload, other_reqs))
    dup = await r.json()
    assert dup["success"] is False, dup
    assert dup["errorReason"] == R.DUPLICATE_SETTLEMENT
    assert dup["transaction"] == ""

    # a different payload for the same message (the payer's signature swapped): same replay key, duplicate
    sigs = list(tx.signatures)
    sigs[1] = Keypair().sign_message(to_bytes_versioned(tx.message))
    tx.signatures = sigs
    forged = {"transaction": base64.b64encode(bytes(tx)).decode()}
    r = await client.post("/settle", json=body(forged, reqs))
    dup = await r.json()
    assert dup["success"] is False, dup
    assert dup["errorReason"] == R.DUPLICATE_SETTLEMENT

    assert w.rpc.calls.count("sendTransaction") == sends
    assert len(await settlement_rows(database_url)) == 1
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE


async def test_invalid_payment_is_not_settled(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    w = world
    client = await aiohttp_client(create_app(facilitator_settings(w, database_url, tmp_path)))
    payload = await create_payment(w.rpc.url, w.payer, w.requirements())
    stranger = w.requirements(pay_to=str(Keypair().pubkey()))  # the transfer goes elsewhere
    r = await client.post("/verify", json=body(payload, stranger))
    out = await r.json()
    assert out["isValid"] is False
    assert out["invalidReason"] == R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH
    assert out["payer"] == str(w.payer.pubkey())
    r = await client.post("/settle", json=body(payload, stranger))
    out = await r.json()
    assert out["success"] is False
    assert out["errorReason"] == R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH
    assert w.rpc.calls.count("sendTransaction") == 0
    assert await settlement_rows(database_url) == []


def plain_transfer(w: World, dest_owner: Keypair, amount: int) -> str:
    """A plain TransferChecked signed and paid by the payer itself; returns its signature."""
    ix = transfer_checked_ix(
        w.program, w.ata(w.payer.pubkey()), w.mint, w.ata(dest_owner.pubkey()), w.payer.pubkey(), amount, 6
    )
    before = set(w.rpc.records)
    w.rpc.run([ix], [w.payer])
    (sig,) = set(w.rpc.records) - before
    return str(sig)


async def test_verify_tx(world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    w = world
    client = await aiohttp_client(create_app(facilitator_settings(w, database_url, tmp_path)))
    sig = plain_transfer(w, w.pay_to, PRICE * 3)
    check = {
        "network": NETWORK,
        "transaction": sig,
        "payTo": str(w.pay_to.pubkey()),
        "asset": str(w.mint),
        "minAmount": str(PRICE),
        "confirmations": 1,
    }
    r = await client.post("/v1/payments/verify-tx", json=check)
    out = await r.json()
    assert r.status == 200, out
    assert out["verified"] is True, out
    assert out["status"] == "verified"
    assert out["amount"] == str(PRICE * 3)
    assert out["payer"] == str(w.payer.pubkey())
    assert out["transaction"] == sig

    # the same signature again for the same payTo: refused (a transaction buys once)
    r = await client.post("/v1/payments/verify-tx", json=check)
    again = await r.json()
    assert r.status == 200, again
    assert again["verified"] is False
    assert again["status"] == "invalid"
    assert again["reason"] == "transaction_already_used"

    # the v1 network name is accepted too, and maps to the same stored transaction
    r = await client.post("/v1/payments/verify-tx", json={**check, "network": "solana-devnet"})
    assert (await r.json())["reason"] == "transaction_already_used"

    # a transfer to someone else does not pay payTo
    stranger = Keypair()
    w.rpc.create_ata(stranger.pubkey(), w.mint, w.program)
    other = plain_transfer(w, stranger, PRICE)
    r = await client.post("/v1/payments/verify-tx", json={**check, "transaction": other})
    wrong = await r.json()
    assert wrong["verified"] is False
    assert wrong["status"] == "invalid"
    assert wrong["reason"] == R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH

    # an unknown signature
    r = await client.post("/v1/payments/verify-tx", json={**check, "transaction": "1" * 64})
    unknown = await r.json()
    assert unknown["verified"] is False
    assert unknown["reason"] == "transaction_not_found"

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT network, tx_id, pay_to, payer, amount FROM verified_transactions")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [(NETWORK, sig, str(w.pay_to.pubkey()), str(w.payer.pubkey()), PRICE * 3)]


async def test_concurrent_settles_send_once(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    w = world
    client, reqs, payload = await _client_and_payment(w, database_url, tmp_path, aiohttp_client)

    async def settle() -> dict[str, Any]:
        r = await client.post("/settle", json=body(payload, reqs))
        out: dict[str, Any] = await r.json()
        return out

    results = await asyncio.gather(*(settle() for _ in range(8)))
    assert sum(r["success"] for r in results) == 1, results  # one payment, one success
    assert {r["errorReason"] for r in results if not r["success"]} == {"duplicate_settlement"}
    assert len({r["transaction"] for r in results}) == 1
    assert w.rpc.calls.count("sendTransaction") == 1
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    (row,) = await settlement_rows(database_url)
    assert row["status"] == "confirmed"


async def test_v1_payment_settles(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    w = world
    client, reqs, payload = await _client_and_payment(w, database_url, tmp_path, aiohttp_client)
    v1_req = {
        "scheme": "exact",
        "network": "solana-devnet",
        "maxAmountRequired": str(PRICE),
        "resource": "http://127.0.0.1/paid",
        "description": "",
        "mimeType": "",
        "payTo": reqs.pay_to,
        "maxTimeoutSeconds": 60,
        "asset": reqs.asset,
        "extra": {"feePayer": str(w.fee_payer.pubkey())},
    }
    v1 = {
        "x402Version": 1,
        "paymentPayload": {"x402Version": 1, "scheme": "exact", "network": "solana-devnet", "payload": payload},
        "paymentRequirements": v1_req,
    }
    r = await client.post("/verify", json=v1)
    out = await r.json()
    assert {k: v for k, v in out.items() if k != "extensions"} == {"isValid": True, "payer": str(w.payer.pubkey())}
    r = await client.post("/settle", json=v1)
    out = await r.json()
    assert out["success"] is True, out
    assert out["network"] == "solana-devnet"  # answered in the request's own naming
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
