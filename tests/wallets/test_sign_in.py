"""An agent wallet signs in (Sign-In-With-X) to what it paid before, with the key that paid, and pays only when the
sign-in is refused."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chains.evm.devchain import DevChain
from tests.harness.evm import token_balance
from tests.harness.paychain import EvmChain
from tests.wallets.conftest import PRICE, Upstream, new_wallet, pay


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """On anvil: Sign-In-With-X verifies the wallet's EVM signature (SIWE)."""
    return EvmChain(devchain)


async def test_wallet_pays_once_then_signs_in(
    service: TestClient[Any, Any], upstream: Upstream, devchain: DevChain, chain: EvmChain
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 5)})
    url = upstream.base_url + "/signin"
    before = await token_balance(devchain, upstream.pay_to)
    status, doc = await pay(service, wallet["id"], url)
    assert status == 200, doc
    assert doc["payment"]["paid"] is True
    status, doc = await pay(service, wallet["id"], url)
    assert status == 200, doc
    assert doc["upstream"]["status"] == 200
    assert doc["payment"] == {"paid": False, "signedIn": wallet["addresses"]["evm"]}
    assert doc["budget"]["total"]["remaining"] == str(PRICE * 4)
    assert await token_balance(devchain, upstream.pay_to) == before + PRICE
    # another query string is another purchase: not paid before, so paid (no sign-in attempt)
    status, doc = await pay(service, wallet["id"], url + "?page=2")
    assert status == 200, doc
    assert doc["payment"]["paid"] is True
    # a second wallet never paid /signin: it pays
    other = await new_wallet(service, chain, {"totalBudget": str(PRICE * 5)})
    status, doc = await pay(service, other["id"], url)
    assert doc["payment"]["paid"] is True
    assert await token_balance(devchain, upstream.pay_to) == before + 3 * PRICE
