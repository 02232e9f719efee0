"""Upstream answers Postgres cannot store as text (NUL, undecodable header bytes) still commit the payment once."""

from __future__ import annotations

import base64
import json
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, CIMultiDictProxy

from tests.harness.paychain import PayChain
from tests.wallets.conftest import PRICE, Upstream, new_wallet, pay
from wallets.outbound import Fetched
from wallets.payer import response_json


async def test_a_nul_in_the_paid_body_travels_as_base64_and_the_payment_commits(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 3)})
    before = await chain.balance(upstream.pay_to)
    status, doc = await pay(service, wallet["id"], upstream.base_url + "/paid-nul")
    assert status == 200, doc
    assert doc["upstream"]["bodyEncoding"] == "base64"
    assert base64.b64decode(doc["upstream"]["body"]) == b"a\x00b"
    assert doc["payment"]["paid"] is True
    assert await chain.balance(upstream.pay_to) == before + PRICE
    r = await service.get(f"/v1/wallets/{wallet['id']}/payments")
    [row] = (await r.json())["payments"]
    assert row["status"] == "committed"
    r = await service.get(f"/v1/wallets/{wallet['id']}/budget")
    assert (await r.json())["spent"] == str(PRICE)


async def test_the_stored_upstream_answer_is_always_valid_jsonb(database_url: str) -> None:
    # what aiohttp hands over for a header with undecodable bytes (surrogateescape) or a NUL, and a NUL body
    headers = CIMultiDictProxy(CIMultiDict([("X-Bin", "caf\udcc3\udca9 \udcff"), ("X-Nul", "a\x00b")]))
    for body in (b"a\x00b", b"\xff\xfe", '{"ok": "é"}'.encode()):
        doc = response_json(Fetched(200, headers, body, "http://u/x"))
        conn = await asyncpg.connect(database_url)
        try:
            stored = await conn.fetchval("SELECT $1::jsonb::text", json.dumps(doc))
        finally:
            await conn.close()
        assert json.loads(stored)["status"] == 200
        assert doc["headers"]["X-Bin"] == "café \ufffd"
