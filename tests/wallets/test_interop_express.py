"""A wallet pays an official ``@x402/express`` server on anvil (settled through our facilitator)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key, token_balance
from tests.harness.node import node_server
from tests.harness.paychain import EvmChain
from tests.wallets.conftest import PRICE, Upstream, new_wallet, pay


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """On anvil: the official Express server pays out through the EVM facilitator."""
    return EvmChain(devchain)


async def test_wallet_pays_official_express_server(
    service: TestClient[Any, Any], upstream: Upstream, devchain: DevChain, chain: EvmChain
) -> None:
    pay_to = address_of(new_key())
    env = {
        "PORT": 0,
        "FACILITATOR_URL": upstream.facilitator_url,
        "AMOUNT": PRICE,
        "ASSET": devchain.token_address,
        "TOKEN_NAME": devchain.token_name,
        "TOKEN_VERSION": devchain.token_version,
        "PAY_TO": pay_to,
    }
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE)})
    async with node_server("express_server.mjs", env) as port:
        status, doc = await pay(service, wallet["id"], f"http://127.0.0.1:{port}/paid")
    assert status == 200, doc
    assert doc["upstream"]["status"] == 200
    assert '"paid":true' in doc["upstream"]["body"]
    assert doc["payment"]["receipt"]["success"] is True
    assert await token_balance(devchain, pay_to) == PRICE
    assert doc["budget"]["total"]["remaining"] == "0"
