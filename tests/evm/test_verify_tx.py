"""verify_transaction: a plain ERC-20 transfer checked by its hash (recipient, amount, confirmations)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eth_account import Account

from chains.base import TxCheck
from chains.evm.adapter import EvmAdapter
from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, dev_network, fund_eth, funded_payer, new_key, rpc


async def transfer(chain: DevChain, key: str, to: str, amount: int) -> str:
    """Send TestUSDC.transfer(to, amount) from ``key`` and wait for it to be mined; the tx hash."""
    sender = address_of(key)
    await fund_eth(chain, sender)
    nonce = int(await rpc(chain.rpc_url, "eth_getTransactionCount", sender, "pending"), 16)
    data = "0xa9059cbb" + "00" * 12 + to.lower()[2:] + amount.to_bytes(32, "big").hex()
    tx = {
        "chainId": chain.chain_id,
        "nonce": nonce,
        "to": chain.token_address,
        "value": 0,
        "data": data,
        "gas": 100_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
        "type": 2,
    }
    signed = Account.sign_transaction(tx, key)
    tx_hash: str = await rpc(chain.rpc_url, "eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    for _ in range(200):
        if await rpc(chain.rpc_url, "eth_getTransactionReceipt", tx_hash):
            return tx_hash
    raise AssertionError("transfer not mined")


@pytest.fixture
async def adapter(devchain: DevChain) -> AsyncIterator[EvmAdapter]:
    a = EvmAdapter([dev_network(devchain)], signer_key=None)
    yield a
    await a.close()


def check(chain: DevChain, tx: str, pay_to: str, min_amount: int, confirmations: int = 1) -> TxCheck:
    return TxCheck(chain.network, tx, pay_to, chain.token_address, min_amount, confirmations)


async def test_happy_path(devchain: DevChain, adapter: EvmAdapter) -> None:
    payer = await funded_payer(devchain)
    pay_to = address_of(new_key())
    tx = await transfer(devchain, payer, pay_to, 7_000)
    out = await adapter.verify_transaction(check(devchain, tx, pay_to, 7_000))
    assert out.status == "verified", out
    assert out.amount == 7_000
    assert out.payer == address_of(payer).lower()
    assert out.confirmations >= 1
    assert out.block is not None


async def test_wrong_recipient_amount_and_asset(devchain: DevChain, adapter: EvmAdapter) -> None:
    payer = await funded_payer(devchain)
    pay_to = address_of(new_key())
    tx = await transfer(devchain, payer, pay_to, 7_000)
    out = await adapter.verify_transaction(check(devchain, tx, address_of(new_key()), 7_000))
    assert (out.status, out.reason) == ("invalid", "recipient_mismatch")
    out = await adapter.verify_transaction(check(devchain, tx, pay_to, 7_001))
    assert (out.status, out.reason) == ("invalid", "amount_too_low")
    other_asset = TxCheck(devchain.network, tx, pay_to, address_of(new_key()), 1)
    out = await adapter.verify_transaction(other_asset)
    assert (out.status, out.reason) == ("invalid", "asset_mismatch")


async def test_too_few_confirmations(devchain: DevChain, adapter: EvmAdapter) -> None:
    payer = await funded_payer(devchain)
    pay_to = address_of(new_key())
    tx = await transfer(devchain, payer, pay_to, 1_000)
    out = await adapter.verify_transaction(check(devchain, tx, pay_to, 1_000, confirmations=3))
    assert (out.status, out.reason) == ("pending", "insufficient_confirmations")
    await rpc(devchain.rpc_url, "anvil_mine", "0x2")
    out = await adapter.verify_transaction(check(devchain, tx, pay_to, 1_000, confirmations=3))
    assert out.status == "verified", out
    assert out.confirmations >= 3


async def test_unknown_transaction(devchain: DevChain, adapter: EvmAdapter) -> None:
    out = await adapter.verify_transaction(check(devchain, "0x" + "cd" * 32, address_of(new_key()), 1))
    assert (out.status, out.reason) == ("invalid", "transaction_not_found")


async def test_non_hash_transaction_is_not_found(devchain: DevChain, adapter: EvmAdapter) -> None:
    """A Solana signature (or any non-hash id) is no EVM transaction: like an unknown one, never an RPC error."""
    for tx in ("5" * 88, "0x" + "cd" * 31, "0x" + "zz" * 32):
        out = await adapter.verify_transaction(check(devchain, tx, address_of(new_key()), 1))
        assert (out.status, out.reason) == ("invalid", "transaction_not_found"), tx
