"""EIP-1271 contract-wallet payers: verify through isValidSignature and settle through the bytes overload."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import pytest
from eth_account import Account

from chains.evm.adapter import EvmAdapter
from chains.evm.devchain import DevChain, deploy_contract
from chains.evm.verify import TWA_BYTES
from tests.evm.test_verify import ctx_of
from tests.harness.evm import (
    TRANSFER_TYPES,
    Payment,
    address_of,
    dev_network,
    fund_eth,
    mint,
    new_key,
    requirements,
    rpc,
    sign_payment,
    token_balance,
)
from x402.wire import reasons
from x402.wire.models import PaymentPayload


def wallet_payment(chain: DevChain, wallet: str, signer_key: str, pay_to: str, amount: int) -> Payment:
    """A payment from ``wallet`` whose authorization is signed by ``signer_key`` (the wallet's owner, or not)."""
    req = requirements(chain, pay_to, amount=amount)
    message = {
        "from": wallet,
        "to": pay_to,
        "value": amount,
        "validAfter": 0,
        "validBefore": int(time.time()) + 600,
        "nonce": "0x" + secrets.token_hex(32),
    }
    typed = {
        **TRANSFER_TYPES,
        "domain": {
            "name": chain.token_name,
            "version": chain.token_version,
            "chainId": chain.chain_id,
            "verifyingContract": chain.token_address,
        },
        "message": message,
    }
    sig = Account.sign_typed_data(signer_key, full_message=typed)
    auth = {k: v if k in ("from", "to", "nonce") else str(v) for k, v in message.items()}
    payload = PaymentPayload(
        accepted=req, payload={"signature": "0x" + bytes(sig.signature).hex(), "authorization": auth}
    )
    return Payment(payload, req, wallet)


@pytest.fixture
async def setup(devchain: DevChain) -> AsyncIterator[tuple[EvmAdapter, str, str]]:
    """(adapter with a funded fresh signer, wallet address, owner key); the wallet holds 1,000,000 tokens."""
    signer = new_key()
    owner = new_key()
    await fund_eth(devchain, address_of(signer))
    wallet = await deploy_contract(devchain.rpc_url, signer, "MockERC1271Wallet", address_of(owner))
    await mint(devchain, wallet, 1_000_000)
    adapter = EvmAdapter([dev_network(devchain)], signer_key=signer)
    yield adapter, wallet, owner
    await adapter.close()


async def test_wallet_verifies_and_settles_via_bytes_overload(
    devchain: DevChain, setup: tuple[EvmAdapter, str, str]
) -> None:
    adapter, wallet, owner = setup
    pay_to = address_of(new_key())
    ctx = ctx_of(wallet_payment(devchain, wallet, owner, pay_to, 400_000))
    out = await adapter.verify(ctx)
    assert out.is_valid, out
    assert out.payer == wallet
    prepared = await adapter.prepare_settlement(ctx)
    await adapter.broadcast(devchain.network, prepared)
    conf = await adapter.confirm(ctx, devchain.network, prepared.tx_id, timeout=10)
    assert conf.status == "confirmed", conf
    tx = await rpc(devchain.rpc_url, "eth_getTransactionByHash", prepared.tx_id)
    assert tx["input"].startswith("0x" + TWA_BYTES.hex())
    assert await token_balance(devchain, pay_to) == 400_000
    assert await token_balance(devchain, wallet) == 600_000


async def test_wrong_owner_rejected(devchain: DevChain, setup: tuple[EvmAdapter, str, str]) -> None:
    adapter, wallet, _owner = setup
    ctx = ctx_of(wallet_payment(devchain, wallet, new_key(), address_of(new_key()), 1_000))
    out = await adapter.verify(ctx)
    assert not out.is_valid
    assert out.reason == reasons.INVALID_EXACT_EVM_SIGNATURE
    assert out.payer == wallet


async def test_eoa_payment_uses_vrs_overload(devchain: DevChain, setup: tuple[EvmAdapter, str, str]) -> None:
    adapter, _wallet, _owner = setup
    payer = new_key()
    await mint(devchain, address_of(payer), 5_000)
    ctx = ctx_of(sign_payment(devchain, payer, requirements(devchain, address_of(new_key()), amount=5_000)))
    prepared = await adapter.prepare_settlement(ctx)
    await adapter.broadcast(devchain.network, prepared)
    assert (await adapter.confirm(ctx, devchain.network, prepared.tx_id, timeout=10)).status == "confirmed"
    tx = await rpc(devchain.rpc_url, "eth_getTransactionByHash", prepared.tx_id)
    assert tx["input"].startswith("0xe3ee160e")
