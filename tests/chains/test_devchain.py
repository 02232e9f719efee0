"""The local dev chain: anvil, the deterministic TestUSDC token, EIP-3009 and ERC-1271 settlement."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError
from web3.types import Nonce
from web3.utils.address import get_create_address

from chains.evm.devchain import (
    DEV_ADDRESSES,
    DEV_KEYS,
    DEV_MINT_AMOUNT,
    DEV_TOKEN_ADDRESS,
    PERMIT2_CONTRACTS,
    AnvilError,
    AnvilProcess,
    DevChain,
    deploy_contract,
    deploy_dev_token,
    find_anvil,
    load_artifact,
    start_devchain,
)
from tests.harness.evm import TRANSFER_TYPES

VRS_SIG = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
BYTES_SIG = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"


@pytest_asyncio.fixture
async def devchain() -> AsyncIterator[tuple[DevChain, AsyncWeb3[AsyncHTTPProvider], AsyncContract]]:
    """A fresh anvil with TestUSDC deployed and funded, plus a connected AsyncWeb3 and token contract."""
    anvil, chain = await start_devchain()
    w3 = AsyncWeb3(AsyncHTTPProvider(chain.rpc_url))
    try:
        token = w3.eth.contract(address=chain.token_address, abi=load_artifact("TestUSDC")["abi"])
        yield chain, w3, token
    finally:
        await w3.provider.disconnect()
        await anvil.stop()


def _typed(chain: DevChain, token: str, sender: str, to: str, value: int, nonce: bytes) -> dict[str, Any]:
    return {
        **TRANSFER_TYPES,
        "domain": {
            "name": chain.token_name,
            "version": chain.token_version,
            "chainId": chain.chain_id,
            "verifyingContract": token,
        },
        "message": {
            "from": sender,
            "to": to,
            "value": value,
            "validAfter": 0,
            "validBefore": int(time.time()) + 600,
            "nonce": nonce,
        },
    }


def _args(typed: dict[str, Any]) -> list[Any]:
    m = typed["message"]
    return [m["from"], m["to"], m["value"], m["validAfter"], m["validBefore"], m["nonce"]]


async def _transact(w3: AsyncWeb3[AsyncHTTPProvider], key: str, fn: Any) -> Any:
    acct = Account.from_key(key)
    tx = await fn.build_transaction({"from": acct.address, "nonce": await w3.eth.get_transaction_count(acct.address)})
    signed = acct.sign_transaction(tx)
    tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    return await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.02)


@pytest.mark.asyncio
async def test_dev_accounts_and_token_are_deterministic(devchain: Any) -> None:
    chain, w3, token = devchain
    assert list(await w3.eth.accounts) == list(DEV_ADDRESSES)
    assert [Account.from_key(k).address for k in DEV_KEYS] == list(DEV_ADDRESSES)
    assert get_create_address(DEV_ADDRESSES[0], Nonce(0)) == DEV_TOKEN_ADDRESS == chain.token_address
    assert await w3.eth.chain_id == chain.chain_id == 31337
    assert chain.network == "eip155:31337"
    assert await w3.eth.get_code(DEV_TOKEN_ADDRESS)
    assert await token.functions.name().call() == "USD Coin"
    assert await token.functions.symbol().call() == "USDC"
    assert await token.functions.version().call() == "2"
    assert await token.functions.decimals().call() == 6
    domain = _typed(chain, DEV_TOKEN_ADDRESS, DEV_ADDRESSES[1], DEV_ADDRESSES[2], 1, bytes(32))
    assert await token.functions.DOMAIN_SEPARATOR().call() == encode_typed_data(full_message=domain).header
    for address in DEV_ADDRESSES[1:]:
        assert await token.functions.balanceOf(address).call() == DEV_MINT_AMOUNT == 1_000_000 * 10**6
    for name, canonical in PERMIT2_CONTRACTS:  # our Permit2 builds at the canonical addresses, without a transaction
        assert await w3.eth.get_code(w3.to_checksum_address(canonical)), name
    nonce_before = await w3.eth.get_transaction_count(DEV_ADDRESSES[0])
    assert await deploy_dev_token(chain.rpc_url) == DEV_TOKEN_ADDRESS  # idempotent: no deploy, no mint
    assert await w3.eth.get_transaction_count(DEV_ADDRESSES[0]) == nonce_before
    assert await token.functions.balanceOf(DEV_ADDRESSES[1]).call() == DEV_MINT_AMOUNT


@pytest.mark.asyncio
async def test_transfer_with_authorization_vrs_then_replay_reverts(devchain: Any) -> None:
    chain, w3, token = devchain
    payer, pay_to = DEV_ADDRESSES[1], DEV_ADDRESSES[5]
    typed = _typed(chain, chain.token_address, payer, pay_to, 10_000, secrets.token_bytes(32))
    sig = Account.sign_typed_data(chain.payer_keys[0], full_message=typed)
    fn = token.get_function_by_signature(VRS_SIG)(
        *_args(typed), sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big")
    )
    receipt = await _transact(w3, chain.facilitator_key, fn)
    assert receipt["status"] == 1
    assert await token.functions.balanceOf(payer).call() == DEV_MINT_AMOUNT - 10_000
    assert await token.functions.balanceOf(pay_to).call() == DEV_MINT_AMOUNT + 10_000
    assert await token.functions.authorizationState(payer, typed["message"]["nonce"]).call() is True
    with pytest.raises(ContractLogicError, match="authorization is used or canceled"):
        await fn.call({"from": DEV_ADDRESSES[0]})


@pytest.mark.asyncio
async def test_transfer_with_authorization_bytes_signature(devchain: Any) -> None:
    chain, w3, token = devchain
    payer, pay_to = DEV_ADDRESSES[3], DEV_ADDRESSES[6]
    typed = _typed(chain, chain.token_address, payer, pay_to, 250_000, secrets.token_bytes(32))
    sig = Account.sign_typed_data(DEV_KEYS[3], full_message=typed)
    bad = token.get_function_by_signature(BYTES_SIG)(
        *_args({**typed, "message": {**typed["message"], "value": 1}}), sig.signature
    )
    with pytest.raises(ContractLogicError, match="invalid signature"):
        await bad.call({"from": DEV_ADDRESSES[0]})
    receipt = await _transact(
        w3, chain.facilitator_key, token.get_function_by_signature(BYTES_SIG)(*_args(typed), sig.signature)
    )
    assert receipt["status"] == 1
    assert await token.functions.balanceOf(pay_to).call() == DEV_MINT_AMOUNT + 250_000


@pytest.mark.asyncio
async def test_erc1271_wallet_settles_via_bytes_overload(devchain: Any) -> None:
    chain, w3, token = devchain
    owner_key, owner = DEV_KEYS[2], DEV_ADDRESSES[2]
    wallet = await deploy_contract(chain.rpc_url, DEV_KEYS[0], "MockERC1271Wallet", owner)
    wallet_contract = w3.eth.contract(address=wallet, abi=load_artifact("MockERC1271Wallet")["abi"])
    assert await wallet_contract.functions.owner().call() == owner
    assert (await _transact(w3, DEV_KEYS[0], token.functions.mint(wallet, 5_000_000)))["status"] == 1

    pay_to = DEV_ADDRESSES[7]
    typed = _typed(chain, chain.token_address, wallet, pay_to, 1_000_000, secrets.token_bytes(32))
    digest = encode_typed_data(full_message=typed)
    full_digest = b"\x19" + digest.version + digest.header + digest.body
    hash32 = keccak(full_digest)
    signature = Account.unsafe_sign_hash(hash32, owner_key).signature
    assert await wallet_contract.functions.isValidSignature(hash32, signature).call() == bytes.fromhex("1626ba7e")
    stranger = Account.unsafe_sign_hash(hash32, DEV_KEYS[4]).signature
    assert await wallet_contract.functions.isValidSignature(hash32, stranger).call() == bytes.fromhex("ffffffff")
    with pytest.raises(ContractLogicError, match="invalid signature"):
        await token.get_function_by_signature(BYTES_SIG)(*_args(typed), stranger).call({"from": DEV_ADDRESSES[0]})

    fn = token.get_function_by_signature(BYTES_SIG)(*_args(typed), signature)
    assert (await _transact(w3, chain.facilitator_key, fn))["status"] == 1
    assert await token.functions.balanceOf(wallet).call() == 4_000_000
    assert await token.functions.balanceOf(pay_to).call() == DEV_MINT_AMOUNT + 1_000_000


@pytest.mark.asyncio
async def test_plain_erc20_and_extra_token_instances(devchain: Any) -> None:
    chain, w3, _ = devchain
    plain = await deploy_contract(chain.rpc_url, DEV_KEYS[0], "PlainERC20")
    plain_contract = w3.eth.contract(address=plain, abi=load_artifact("PlainERC20")["abi"])
    assert await plain_contract.functions.name().call() == "Plain Token"
    assert await plain_contract.functions.version().call() == "1"
    assert await plain_contract.functions.decimals().call() == 6
    assert not any(e.get("name") == "transferWithAuthorization" for e in load_artifact("PlainERC20")["abi"])
    # Calling the EIP-3009 selector on it reverts (no such function, no fallback).
    usdc_abi = load_artifact("TestUSDC")["abi"]
    as_3009 = w3.eth.contract(address=plain, abi=usdc_abi)
    with pytest.raises(ContractLogicError):
        await as_3009.functions.authorizationState(DEV_ADDRESSES[1], bytes(32)).call()

    second = await deploy_contract(chain.rpc_url, DEV_KEYS[9], "TestUSDC")
    assert second != DEV_TOKEN_ADDRESS
    assert await w3.eth.contract(address=second, abi=usdc_abi).functions.totalSupply().call() == 0


def test_public_dict_omits_facilitator_key() -> None:
    chain = DevChain(rpc_url="http://127.0.0.1:1")
    public = chain.to_public_dict()
    assert DEV_KEYS[0] not in repr(public)
    assert DEV_KEYS[0] not in repr(chain)
    assert [p["address"] for p in public["payers"]] == list(DEV_ADDRESSES[1:])
    assert [p["privateKey"] for p in public["payers"]] == list(DEV_KEYS[1:])
    assert public["asset"] == {"address": DEV_TOKEN_ADDRESS, "name": "USD Coin", "version": "2", "decimals": 6}
    assert public["facilitatorAddress"] == DEV_ADDRESSES[0]


def test_find_anvil_explicit_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match="npm install"):
        find_anvil(str(tmp_path / "missing-anvil"))
    # the environment is the settings' business: a variable set after start-up changes nothing here
    monkeypatch.setenv("X402_ANVIL_BIN", str(tmp_path / "missing-anvil"))
    assert find_anvil()


@pytest.mark.asyncio
async def test_anvil_process_reports_stderr_on_bad_args() -> None:
    with pytest.raises(AnvilError, match="unexpected argument"):
        await AnvilProcess(extra_args=["--definitely-not-a-flag"]).start()


@pytest.mark.asyncio
async def test_anvil_process_context_manager_with_block_time() -> None:
    async with AnvilProcess(block_time=1, chain_id=1337) as anvil:
        assert anvil.running
        assert anvil.port is not None
        w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        try:
            assert await w3.eth.chain_id == 1337
        finally:
            await w3.provider.disconnect()
    assert not anvil.running


async def test_anvil_process_refuses_a_busy_port() -> None:
    async with AnvilProcess() as first:
        assert first.port is not None
        with pytest.raises(AnvilError, match="in use"):
            await AnvilProcess(port=first.port).start()
