"""Issue 12 §3: ``X402Client`` never signs a second payment for a purchase whose first answer was ambiguous.

Sellers (our paywall, settling in process or through a RemoteFacilitator) really settle on a private anvil and
then fail (tests/harness/faults.py); the on-chain Transfer events and the facilitator's journal rows are counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from chains.evm.adapter import EvmAdapter
from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness.evm import dev_network, funded_payer, token_balance
from tests.harness.faults import (
    OFFER_SECONDS,
    PRICE,
    Seller,
    final_settlement_rows,
    private_devchain,
    settlement_rows,
    start_remote_seller,
    start_seller,
    transfers_to,
    warp,
)
from x402.client import PaymentPending, PaymentPolicy, X402Client

CLIENT_TIMEOUT = 5.0


@pytest.fixture
def devchain() -> Iterator[DevChain]:
    """An anvil for this test alone (time warps stay here)."""
    with private_devchain() as chain:
        yield chain


@pytest.fixture
async def chain_status(devchain: DevChain) -> AsyncIterator[EvmAdapter]:
    """The EVM adapter, used by the client only to ask whether its payment settled."""
    adapter = EvmAdapter([dev_network(devchain)], signer_key=None)
    yield adapter
    await adapter.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)) as s:
        yield s


@pytest.fixture
async def client(session: aiohttp.ClientSession, devchain: DevChain, chain_status: EvmAdapter) -> X402Client:
    key = await funded_payer(devchain)
    policy = PaymentPolicy(allowed_assets=[devchain.token_address])
    return X402Client(session, [EvmSigner(key)], policy, status=chain_status)


@pytest.fixture
async def seller(devchain: DevChain, database_url: str) -> AsyncIterator[Seller]:
    s = await start_seller(devchain, database_url)
    yield s
    await s.close()


@pytest.fixture
async def remote_seller(devchain: DevChain, database_url: str) -> AsyncIterator[Seller]:
    s = await start_remote_seller(devchain, database_url, settle_timeout=2.0)
    yield s
    await s.close()


async def _ambiguous(client: X402Client, url: str) -> Any:
    """The pending payment of an ambiguous answer: raised (no answer) or carried by the response."""
    try:
        resp = await client.get(url)
    except PaymentPending as exc:
        return exc.pending
    assert resp.status != 200, resp.text()
    assert resp.pending is not None, (resp.status, resp.text())
    return resp.pending


async def _assert_paid_once(client: X402Client, seller: Seller, devchain: DevChain, database_url: str) -> None:
    [pending] = client.pending
    # the same purchase again: refused before anything is signed or sent
    handled = seller.faults.handled
    for _ in range(3):
        with pytest.raises(PaymentPending) as info:
            await client.get(seller.url)
        assert info.value.pending is pending
        assert info.value.status == 202
        assert info.value.code == "payment_pending"
    assert seller.faults.handled == handled
    assert len(seller.faults.signatures) == 1
    state = await client.check(pending)
    assert state.state == "settled"
    assert state.transaction is not None
    assert state.transaction.startswith("0x")
    assert client.pending == []
    assert await transfers_to(devchain, seller.pay_to) == 1
    assert await token_balance(devchain, seller.pay_to) == PRICE
    assert await final_settlement_rows(database_url, seller.pay_to) == {"confirmed": 1}


@pytest.mark.parametrize("mode", ["hang", "reset", "502", "402"])
async def test_settled_then_failed_is_pending_never_paid_again(
    mode: str, client: X402Client, seller: Seller, devchain: DevChain, database_url: str
) -> None:
    seller.faults.mode = mode
    pending = await _ambiguous(client, seller.url)
    assert pending.network == devchain.network
    assert pending.payer == client.signers[0].address
    assert pending.nonce is not None
    assert pending.nonce.startswith("0x")
    assert pending.offer.pay_to == seller.pay_to
    assert client.pending == [pending]
    await _assert_paid_once(client, seller, devchain, database_url)


@pytest.mark.parametrize("mode", ["hang", "502", "reset"])
async def test_remote_facilitator_settles_then_fails(
    mode: str, client: X402Client, remote_seller: Seller, devchain: DevChain, database_url: str
) -> None:
    remote_seller.faults.mode = mode
    pending = await _ambiguous(client, remote_seller.url)
    assert pending.status in (None, 502, 503), pending
    await _assert_paid_once(client, remote_seller, devchain, database_url)


async def test_unsettled_payment_is_void_only_after_expiry(
    client: X402Client, seller: Seller, devchain: DevChain, database_url: str
) -> None:
    seller.faults.mode = "nosettle_502"
    pending = await _ambiguous(client, seller.url)
    assert pending.status == 502
    assert (await client.check(pending)).state == "pending"  # unused but still valid: it could settle yet
    with pytest.raises(PaymentPending):
        await client.get(seller.url)
    await warp(devchain, OFFER_SECONDS + 30)
    assert (await client.check(pending)).state == "void"
    assert client.pending == []
    assert await transfers_to(devchain, seller.pay_to) == 0
    assert await settlement_rows(database_url, seller.pay_to) == {}
    assert len(seller.faults.signatures) == 1


async def test_late_settlement_is_found_by_check(
    client: X402Client, seller: Seller, devchain: DevChain, database_url: str
) -> None:
    seller.faults.mode = "late"
    pending = await _ambiguous(client, seller.url)
    assert pending.status is None  # no answer at all: the client timed out
    assert (await client.check(pending)).state == "pending"
    seller.faults.release.set()
    for _ in range(400):
        if await transfers_to(devchain, seller.pay_to) == 1:
            break
        await asyncio.sleep(0.05)
    await _assert_paid_once(client, seller, devchain, database_url)


async def test_slow_settle_within_timeout_is_paid(
    client: X402Client, seller: Seller, devchain: DevChain, database_url: str
) -> None:
    seller.faults.mode = "slow"
    seller.faults.delay = 1.0
    resp = await client.get(seller.url)
    assert resp.status == 200
    assert resp.pending is None
    assert resp.settlement is not None
    assert resp.settlement.success
    assert client.pending == []
    assert await transfers_to(devchain, seller.pay_to) == 1
    assert await final_settlement_rows(database_url, seller.pay_to) == {"confirmed": 1}
