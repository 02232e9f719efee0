"""Every policy refusal has its own code; approvals; the wallet table holds only ciphertext."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from chains.fake import FakeKeys
from tests.harness.paychain import PayChain
from tests.wallets.conftest import PRICE, Upstream, new_wallet, pay


async def _code(client: TestClient[Any, Any], chain: PayChain, url: str, policy: dict[str, Any], **body: Any) -> Any:
    wallet = await new_wallet(client, chain, policy, fund=0)
    status, doc = await pay(client, wallet["id"], url, **body)
    assert status >= 400, doc
    return status, doc


async def test_each_policy_violation_has_its_code(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain
) -> None:
    url = upstream.paid_url
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"allowedUrls": ["https://api.example.com/*"]}, {}, "url_not_allowed"),
        ({"allowedPayees": [chain.payee()]}, {}, "payee_not_allowed"),
        ({"allowedNetworks": ["eip155:8453"]}, {}, "network_not_allowed"),
        ({"allowedAssets": [chain.payee()]}, {}, "asset_not_allowed"),
        ({"perPaymentCap": str(PRICE - 1)}, {}, "per_payment_cap_exceeded"),
        ({}, {"maxAmount": str(PRICE - 1)}, "over_max_amount"),
        ({"expiresAt": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}, {}, "wallet_expired"),
        ({"totalBudget": str(PRICE - 1)}, {}, "budget_exceeded"),
        ({"weeklyCap": str(PRICE - 1)}, {}, "window_cap_exceeded"),
    ]
    for policy, body, code in cases:
        _, doc = await _code(service, chain, url, policy, **body)
        assert doc["code"] == code, (policy, doc)
        assert doc["detail"]
    # paused
    wallet = await new_wallet(service, chain, fund=0)
    r = await service.post(f"/v1/wallets/{wallet['id']}/pause", json={"reason": "test"})
    assert r.status == 200
    status, doc = await pay(service, wallet["id"], url)
    assert (status, doc["code"]) == (423, "wallet_paused")
    # only an unsignable scheme on offer
    status, doc = await pay(service, (await new_wallet(service, chain, fund=0))["id"], upstream.base_url + "/upto")
    assert doc["code"] == "no_acceptable_offer", doc


async def test_window_cap_says_which_window(service: TestClient[Any, Any], upstream: Upstream, chain: PayChain) -> None:
    wallet = await new_wallet(service, chain, {"dailyCap": str(PRICE + PRICE // 2)})
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert status == 200, doc
    assert doc["budget"]["daily"]["remaining"] == str(PRICE // 2)
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert status == 403, doc
    assert doc["code"] == "window_cap_exceeded", doc
    assert doc["window"] == "daily", doc


async def test_approval_above_threshold(service: TestClient[Any, Any], upstream: Upstream, chain: PayChain) -> None:
    wallet = await new_wallet(service, chain, {"approvalThreshold": str(PRICE - 1)})
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert status == 202, doc
    assert doc["code"] == "approval_pending", doc
    approval = doc["approvalId"]
    r = await service.get(f"/v1/wallets/{wallet['id']}/approvals?status=pending")
    approvals = (await r.json())["approvals"]
    assert [a["id"] for a in approvals] == [approval]
    # money is a plain integer string of atomic units (10000, never 1E+4) in every answer
    assert [a["amount"] for a in approvals] == [str(PRICE)]
    # not yet approved: cannot be used
    status, doc = await pay(service, wallet["id"], upstream.paid_url, approvalId=approval)
    assert doc["code"] == "approval_invalid", doc
    r = await service.post(f"/v1/wallets/{wallet['id']}/approvals/{approval}/approve")
    assert r.status == 200
    assert (await r.json())["status"] == "approved"
    status, doc = await pay(service, wallet["id"], upstream.paid_url, approvalId=approval)
    assert status == 200, doc
    assert doc["payment"]["paid"], doc
    r = await service.get(f"/v1/wallets/{wallet['id']}/payments")
    assert [p["amount"] for p in (await r.json())["payments"]] == [str(PRICE)]
    # used once only
    status, doc = await pay(service, wallet["id"], upstream.paid_url, approvalId=approval)
    assert doc["code"] == "approval_invalid", doc
    # a rejected one stays rejected
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    other = doc["approvalId"]
    r = await service.post(f"/v1/wallets/{wallet['id']}/approvals/{other}/reject")
    assert (await r.json())["status"] == "rejected"
    status, doc = await pay(service, wallet["id"], upstream.paid_url, approvalId=other)
    assert doc["code"] == "approval_invalid"


async def test_only_ciphertext_at_rest_and_no_key_in_answers(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain, database_url: str
) -> None:
    secret_hex = secrets.token_hex(32)
    r = await service.post("/v1/wallets", json={"import": {chain.kind: secret_hex}, "policy": {}})
    assert r.status == 201
    text = await r.text()
    wallet = await r.json()
    assert wallet["addresses"][chain.kind] == FakeKeys().imported(secret_hex).address
    assert secret_hex not in text.lower()
    r = await service.get(f"/v1/wallets/{wallet['id']}")
    assert secret_hex not in (await r.text()).lower()
    conn = await asyncpg.connect(database_url)
    try:
        for table in ("wallets", "wallet_keys"):
            rows = await conn.fetch(f"SELECT * FROM {table}")
            for row in rows:
                for value in row.values():
                    blob = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                    assert bytes.fromhex(secret_hex) not in blob
                    assert secret_hex.encode() not in blob.lower()
        ct = await conn.fetchval("SELECT ciphertext FROM wallet_keys WHERE wallet_id = $1", uuid.UUID(wallet["id"]))
        assert len(ct) == 32 + 16  # AES-GCM: the 32-byte key plus its tag
    finally:
        await conn.close()
    # the imported wallet pays
    await chain.fund(wallet["addresses"][chain.kind], 10**8)
    before = await chain.balance(upstream.pay_to)
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert status == 200, doc
    assert await chain.balance(upstream.pay_to) == before + PRICE
