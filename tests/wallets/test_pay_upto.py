"""Agent wallets pay a metered (``upto``) route on anvil: the hold counts the signed maximum while the payment is
out, the ledger the actual amount once settled."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chains.evm.devchain import DevChain
from tests.harness import permit2 as h
from tests.harness.evm import token_balance
from tests.harness.paychain import EvmChain
from tests.wallets.conftest import UPTO_MAXIMUM, Upstream, new_wallet, pay


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """On anvil: upto settles through Permit2 and its proxy."""
    return EvmChain(devchain)


async def test_wallet_pays_the_actual_amount_within_policy(
    service: TestClient[Any, Any], upstream: Upstream, devchain: DevChain, chain: EvmChain
) -> None:
    url = upstream.base_url + "/metered?used=1234"
    # a budget below the signed maximum refuses to sign, whatever the route will charge in the end
    small = await new_wallet(service, chain, {"totalBudget": str(UPTO_MAXIMUM - 1)})
    status, doc = await pay(service, small["id"], url)
    assert (status, doc["code"]) == (403, "budget_exceeded"), doc
    assert await token_balance(devchain, upstream.pay_to) == 0

    wallet = await new_wallet(service, chain, {"totalBudget": str(UPTO_MAXIMUM * 2)})
    await h.approve_permit2_as(devchain, wallet["addresses"]["evm"], devchain.token_address)
    status, doc = await pay(service, wallet["id"], url)
    assert status == 200, doc
    assert doc["payment"]["amount"] == "1234"
    assert doc["payment"]["maximum"] == str(UPTO_MAXIMUM)
    assert doc["payment"]["receipt"]["amount"] == "1234"
    assert doc["budget"]["total"]["remaining"] == str(UPTO_MAXIMUM * 2 - 1234)
    assert await token_balance(devchain, upstream.pay_to) == 1234
    r = await service.get(f"/v1/wallets/{wallet['id']}/payments")
    [row] = (await r.json())["payments"]
    assert (row["status"], row["amount"]) == ("committed", "1234")
