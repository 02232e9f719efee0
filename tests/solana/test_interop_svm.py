"""The official @x402/svm 2.27 client pays through our facilitator on the LiteSVM shim (architecture.md §5, §9.4).

The client only knows RPC URLs for the three public Solana CAIP-2 ids, so the payment uses the devnet id with the
shim's URL as ``rpcUrl``. The shim serves inside this test's event loop while ``run_node`` awaits the Node process
(asyncio subprocess), so the client's getAccountInfo/getLatestBlockhash calls are answered.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from solders.message import MessageV0
from solders.transaction import VersionedTransaction

from chains.solana.payer import (
    COMPUTE_BUDGET_PROGRAM,
    DEFAULT_COMPUTE_UNIT_LIMIT,
    DEFAULT_COMPUTE_UNIT_PRICE,
    MEMO_PROGRAM,
    TRANSFER_CHECKED,
)
from tests.harness.node import run_node
from tests.solana.conftest import NETWORK, PRICE, START_BALANCE, World
from tests.solana.test_facilitator import facilitator_settings, settlement_rows
from x402.service.app import create_app

ClientFactory = Any


def payment_required(w: World, fee_payer: str) -> dict[str, Any]:
    """A v2 PaymentRequired for PRICE of the shim's mint, with ``extra.feePayer`` as /supported advertises it."""
    return {
        "x402Version": 2,
        "error": "Payment required",
        "resource": {"url": "http://127.0.0.1/paid", "description": "", "mimeType": ""},
        "accepts": [
            {
                "scheme": "exact",
                "network": NETWORK,
                "amount": str(PRICE),
                "asset": str(w.mint),
                "payTo": str(w.pay_to.pubkey()),
                "maxTimeoutSeconds": 60,
                "extra": {"feePayer": fee_payer},
            }
        ],
    }


async def official_payment(w: World, required: dict[str, Any]) -> dict[str, Any]:
    """The PaymentPayload the official client builds (signed with the world's payer key)."""
    return await run_node(
        "svm_payload.mjs",
        stdin={"paymentRequired": required, "secretKey": list(bytes(w.payer)), "rpcUrl": w.rpc.url},
    )


async def test_official_svm_client_payment_verifies_and_settles(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    w = world
    client = await aiohttp_client(create_app(facilitator_settings(w, database_url, tmp_path)))
    r = await client.get("/supported")
    kinds = (await r.json())["kinds"]
    (kind,) = [k for k in kinds if k["x402Version"] == 2 and k["network"] == NETWORK]
    required = payment_required(w, kind["extra"]["feePayer"])
    requirements = required["accepts"][0]

    seen = len(w.rpc.calls)
    payload = await official_payment(w, required)
    assert {"getAccountInfo", "getLatestBlockhash"} <= set(w.rpc.calls[seen:])  # the client used the shim
    assert payload["x402Version"] == 2
    assert payload["accepted"] == requirements
    assert payload["resource"] == required["resource"]
    assert set(payload["payload"]) == {"transaction"}

    # the transaction is what architecture.md §5.2 says official clients build
    tx = VersionedTransaction.from_bytes(base64.b64decode(payload["payload"]["transaction"]))
    msg = tx.message
    assert isinstance(msg, MessageV0)
    assert msg.account_keys[0] == w.fee_payer.pubkey()
    assert msg.header.num_required_signatures == 2
    assert msg.account_keys[1] == w.payer.pubkey()
    keys = msg.account_keys
    limit, price, transfer, memo = msg.instructions
    assert keys[limit.program_id_index] == COMPUTE_BUDGET_PROGRAM
    assert bytes(limit.data) == bytes([2]) + DEFAULT_COMPUTE_UNIT_LIMIT.to_bytes(4, "little")
    assert keys[price.program_id_index] == COMPUTE_BUDGET_PROGRAM
    assert bytes(price.data) == bytes([3]) + DEFAULT_COMPUTE_UNIT_PRICE.to_bytes(8, "little")
    assert keys[transfer.program_id_index] == w.program
    assert bytes(transfer.data) == bytes([TRANSFER_CHECKED]) + PRICE.to_bytes(8, "little") + bytes([6])
    assert [keys[i] for i in bytes(transfer.accounts)] == [
        w.ata(w.payer.pubkey()),
        w.mint,
        w.ata(w.pay_to.pubkey()),
        w.payer.pubkey(),
    ]
    assert keys[memo.program_id_index] == MEMO_PROGRAM
    assert len(bytes(memo.data)) == 32  # 16 random bytes, hex
    assert bytes(tx.signatures[0]) == bytes(64)  # the fee payer's slot is left empty

    body = {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements}
    r = await client.post("/verify", json=body)
    verified = await r.json()
    assert r.status == 200, verified
    assert verified["isValid"] is True
    assert verified["payer"] == str(w.payer.pubkey())

    r = await client.post("/settle", json=body)
    settled = await r.json()
    assert r.status == 200, settled
    assert settled["success"] is True, settled
    assert settled["network"] == NETWORK
    assert settled["payer"] == str(w.payer.pubkey())
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    assert w.rpc.token_balance(w.ata(w.payer.pubkey())) == START_BALANCE - PRICE
    (row,) = await settlement_rows(database_url)
    assert (row["status"], row["tx_id"]) == ("confirmed", settled["transaction"])

    # settling it again: a duplicate naming the original transaction, nothing sent
    sends = w.rpc.calls.count("sendTransaction")
    r = await client.post("/settle", json=body)
    dup = await r.json()
    assert (dup["success"], dup["errorReason"], dup["transaction"]) == (
        False,
        "duplicate_settlement",
        settled["transaction"],
    )
    assert w.rpc.calls.count("sendTransaction") == sends


async def test_official_svm_client_token_2022_and_seller_memo(
    world2022: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    w = world2022
    client = await aiohttp_client(create_app(facilitator_settings(w, database_url, tmp_path)))
    required = payment_required(w, str(w.fee_payer.pubkey()))
    required["accepts"][0]["extra"]["memo"] = "order-42"
    requirements = required["accepts"][0]
    payload = await official_payment(w, required)
    tx = VersionedTransaction.from_bytes(base64.b64decode(payload["payload"]["transaction"]))
    assert tx.message.account_keys[tx.message.instructions[2].program_id_index] == w.program
    assert bytes(tx.message.instructions[3].data) == b"order-42"

    body = {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements}
    r = await client.post("/settle", json=body)
    settled = await r.json()
    assert settled["success"] is True, settled
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
