"""Agent wallets send a payment-identifier id where the seller declares it; a retry with the same key reuses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.harness.paychain import PayChain, offer_on, paywalled
from tests.wallets.conftest import PRICE, new_wallet, pay
from x402.paywall import PaidRoute
from x402.wire import payment_identifier as pid


@pytest.fixture
async def seller(chain: PayChain, database_url: str) -> AsyncIterator[tuple[str, str]]:
    """A paywalled ``GET /paid`` that requires a payment identifier: (URL, payTo)."""
    pay_to = chain.payee()

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"paid": True})

    routes = {("GET", "/paid"): PaidRoute((offer_on(chain, pay_to, PRICE),), payment_identifier="required")}
    server = await paywalled(chain, database_url, {"/paid": handler}, routes)
    try:
        yield str(server.make_url("/paid")), pay_to
    finally:
        await server.close()


async def _ids(database_url: str) -> list[str | None]:
    conn = await asyncpg.connect(database_url)
    try:
        return [r["payment_identifier"] for r in await conn.fetch("SELECT payment_identifier FROM settlements")]
    finally:
        await conn.close()


async def test_wallet_sends_the_identifier(
    service: TestClient[Any, Any], seller: tuple[str, str], chain: PayChain, database_url: str
) -> None:
    url, pay_to = seller
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 5)})
    status, doc = await pay(service, wallet["id"], url, headers={"Idempotency-Key": "agent-call-7"})
    assert status == 200, doc
    expected = pid.derived_id(wallet["id"], "agent-call-7")  # stable per (wallet, key): a retry reuses it
    assert doc["payment"]["paymentIdentifier"] == expected
    assert pid.is_valid_id(expected)
    status, again = await pay(service, wallet["id"], url)  # no key: a new purchase, a fresh id
    assert status == 200, again
    assert again["payment"]["paymentIdentifier"] != expected
    assert sorted(i or "" for i in await _ids(database_url)) == sorted(
        [expected, again["payment"]["paymentIdentifier"]]
    )
    assert await chain.balance(pay_to) == 2 * PRICE
