"""ERC-6492: a counterfactual (not yet deployed) smart-wallet payer, accepted only for allow-listed factories."""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_hash.auto import keccak

from chains.evm.devchain import DevChain, deploy_contract
from tests.harness import evm
from tests.harness.evm import TRANSFER_TYPES
from x402.app import create_app
from x402.settings import AssetConfig, NetworkConfig
from x402.wire.models import PaymentPayload

MAGIC = bytes.fromhex("6492" * 16)


async def _factory(chain: DevChain) -> str:
    deployer = evm.new_key()
    await evm.fund_eth(chain, evm.address_of(deployer))
    return await deploy_contract(chain.rpc_url, deployer, "WalletFactory")


async def _counterfactual(chain: DevChain, factory: str, owner: str, salt: bytes) -> str:
    data = "0x" + (keccak(b"addressOf(address,bytes32)")[:4] + abi_encode(["address", "bytes32"], [owner, salt])).hex()
    out: str = await evm.rpc(chain.rpc_url, "eth_call", {"to": factory, "data": data}, "latest")
    return "0x" + out[-40:]


def _payment(chain: DevChain, signer_key: str, wallet: str, factory: str, owner: str, salt: bytes, pay_to: str) -> Any:
    req = evm.requirements(chain, pay_to, 3_000)
    message = {
        "from": wallet,
        "to": pay_to,
        "value": 3_000,
        "validAfter": 0,
        "validBefore": int(time.time()) + 600,
        "nonce": "0x" + secrets.token_hex(32),
    }
    domain = {"name": chain.token_name, "version": chain.token_version, "chainId": chain.chain_id,
              "verifyingContract": chain.token_address}  # fmt: skip
    inner = bytes(Account.sign_typed_data(signer_key, full_message={**TRANSFER_TYPES, "domain": domain,
                                                                     "message": message}).signature)  # fmt: skip
    calldata = keccak(b"createAccount(address,bytes32)")[:4] + abi_encode(["address", "bytes32"], [owner, salt])
    wrapped = abi_encode(["address", "bytes", "bytes"], [factory, calldata, inner]) + MAGIC
    authorization = {k: str(v) if k in ("value", "validAfter", "validBefore") else v for k, v in message.items()}
    payload = PaymentPayload(accepted=req, payload={"signature": "0x" + wrapped.hex(), "authorization": authorization})
    return {
        "x402Version": 2,
        "paymentPayload": msgspec.to_builtins(payload),
        "paymentRequirements": msgspec.to_builtins(req),
    }


async def test_counterfactual_wallet_verifies_and_settles_for_allowed_factories(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    factory = await _factory(devchain)
    owner_key = evm.new_key()
    owner = evm.address_of(owner_key)
    salt = secrets.token_bytes(32)
    wallet = await _counterfactual(devchain, factory, owner, salt)
    assert await evm.rpc(devchain.rpc_url, "eth_getCode", wallet, "latest") in ("0x", "0x0")
    await evm.mint(devchain, wallet, 10_000)
    pay_to = evm.address_of(evm.new_key())
    signer = evm.new_key()
    await evm.fund_eth(devchain, evm.address_of(signer))
    asset = AssetConfig(address=devchain.token_address, name=devchain.token_name, version=devchain.token_version)

    def app(factories: tuple[str, ...]) -> Any:
        net = NetworkConfig(devchain.network, (devchain.rpc_url,), assets=(asset,), eip6492_factories=factories)
        return create_app(evm.chain_settings(devchain, database_url, signer).with_(networks=(net,)))

    # a factory that is not allow-listed is refused outright
    closed = await aiohttp_client(app(()))
    body = _payment(devchain, owner_key, wallet, factory, owner, salt, pay_to)
    r = await closed.post("/verify", json=body)
    assert (await r.json())["invalidReason"] == "eip6492_factory_not_allowed"

    client = await aiohttp_client(app((factory,)))
    # a signature the wallet's owner did not make is rejected by the deployless check
    forged = _payment(devchain, evm.new_key(), wallet, factory, owner, salt, pay_to)
    r = await client.post("/verify", json=forged)
    assert (await r.json())["invalidReason"] == "invalid_exact_evm_signature"

    r = await client.post("/verify", json=body)
    out = await r.json()
    assert out["isValid"] is True, out
    assert out["payer"].lower() == wallet.lower()

    r = await client.post("/settle", json=body)
    out = await r.json()
    assert out["success"] is True, out
    assert await evm.rpc(devchain.rpc_url, "eth_getCode", wallet, "latest") not in ("0x", "0x0")  # deployed
    assert await evm.token_balance(devchain, pay_to) == 3_000
    assert await evm.token_balance(devchain, wallet) == 7_000
    assert await evm.tx_count(devchain, evm.address_of(signer)) == 2  # deployment + transfer

    # once deployed, a second 6492-wrapped payment from the same wallet goes the plain EIP-1271 way
    again = _payment(devchain, owner_key, wallet, factory, owner, salt, pay_to)
    r = await client.post("/settle", json=again)
    assert (await r.json())["success"] is True
    assert await evm.token_balance(devchain, pay_to) == 6_000
    assert await evm.tx_count(devchain, evm.address_of(signer)) == 3
