"""EVM test helpers: payments signed with eth-account (independent of the service's fast path), balances."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from eth_account import Account

from chains.config import AssetConfig, NetworkConfig
from chains.evm.devchain import AnvilProcess, DevChain, deploy_dev_token
from tests.harness.wire import Payment as Payment
from tests.harness.wire import payment_of
from x402.service.settings import Settings
from x402.wire.models import PaymentRequirements

#: EIP-712 types of EIP-3009 ``TransferWithAuthorization`` (tests sign with eth-account, independently of the
#: service's own digest code).
TRANSFER_TYPES: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "TransferWithAuthorization": [
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "validAfter", "type": "uint256"},
            {"name": "validBefore", "type": "uint256"},
            {"name": "nonce", "type": "bytes32"},
        ],
    },
    "primaryType": "TransferWithAuthorization",
}


def requirements(chain: DevChain, pay_to: str, amount: int = 10_000, **extra: Any) -> PaymentRequirements:
    """Requirements for the dev token on the dev chain."""
    return PaymentRequirements(
        scheme="exact",
        network=chain.network,
        amount=str(amount),
        asset=chain.token_address,
        pay_to=pay_to,
        max_timeout_seconds=60,
        extra={"name": chain.token_name, "version": chain.token_version, **extra},
    )


def sign_payment(
    chain: DevChain,
    payer_key: str,
    req: PaymentRequirements,
    *,
    value: int | None = None,
    to: str | None = None,
    valid_after: int = 0,
    valid_before: int | None = None,
    nonce: str | None = None,
    name: str | None = None,
    version: str | None = None,
    chain_id: int | None = None,
    verifying_contract: str | None = None,
) -> Payment:
    """Sign an EIP-3009 TransferWithAuthorization with eth-account (overrides make invalid payments)."""
    acct = Account.from_key(payer_key)
    message = {
        "from": acct.address,
        "to": to or req.pay_to,
        "value": int(req.amount) if value is None else value,
        "validAfter": valid_after,
        "validBefore": int(time.time()) + 600 if valid_before is None else valid_before,
        "nonce": nonce or "0x" + secrets.token_hex(32),
    }
    typed = {
        **TRANSFER_TYPES,
        "domain": {
            "name": name or req.extra.get("name", chain.token_name),
            "version": version or req.extra.get("version", chain.token_version),
            "chainId": chain_id or chain.chain_id,
            "verifyingContract": verifying_contract or req.asset,
        },
        "message": message,
    }
    sig = Account.sign_typed_data(payer_key, full_message=typed)
    authorization = {k: str(v) if k != "from" and k != "to" and k != "nonce" else v for k, v in message.items()}
    scheme_payload = {"signature": "0x" + bytes(sig.signature).hex(), "authorization": authorization}
    return payment_of(req, scheme_payload, acct.address)


def new_key() -> str:
    """A fresh random private key."""
    return "0x" + secrets.token_hex(32)


def address_of(key: str) -> str:
    """The checksummed address of a key."""
    return str(Account.from_key(key).address)


async def rpc(url: str, method: str, *params: Any) -> Any:
    """One raw JSON-RPC call."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        doc = await r.json()
    if "error" in doc:
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


async def fund_eth(chain: DevChain, address: str, wei: int = 10**20) -> None:
    """Give an address ETH for gas (anvil cheat code)."""
    await rpc(chain.rpc_url, "anvil_setBalance", address, hex(wei))


async def funded_signer(chain: DevChain) -> tuple[str, str]:
    """A fresh facilitator signer key with gas, and its address."""
    key = new_key()
    await fund_eth(chain, address_of(key))
    return key, address_of(key)


async def facilitator_client(aiohttp_client: Any, chain: DevChain, database_url: str, **kw: Any) -> tuple[Any, str]:
    """A test client of the service settling with a fresh funded signer (settings overrides as keywords)."""
    from x402.service.app import create_app

    key, signer = await funded_signer(chain)
    return await aiohttp_client(create_app(chain_settings(chain, database_url, key, **kw))), signer


async def token_balance(chain: DevChain, address: str, token: str | None = None) -> int:
    """ERC-20 balanceOf via eth_call."""
    data = "0x70a08231" + "00" * 12 + address.lower().removeprefix("0x")
    out = await rpc(chain.rpc_url, "eth_call", {"to": token or chain.token_address, "data": data}, "latest")
    return int(out, 16)


async def mint(chain: DevChain, to: str, amount: int, token: str | None = None) -> None:
    """Mint test tokens (TestUSDC.mint is open) from an impersonated account to avoid nonce races."""
    minter = "0x000000000000000000000000000000000000dEaD"
    await rpc(chain.rpc_url, "anvil_impersonateAccount", minter)
    await fund_eth(chain, minter)
    data = "0x40c10f19" + "00" * 12 + to.lower().removeprefix("0x") + amount.to_bytes(32, "big").hex()
    tx = await rpc(
        chain.rpc_url, "eth_sendTransaction", {"from": minter, "to": token or chain.token_address, "data": data}
    )
    await wait_receipt(chain, tx)


async def wait_receipt(chain: DevChain, tx: str, timeout: float = 15.0) -> dict[str, Any]:
    """The transaction's receipt once mined (anvil mines on send, but a busy box may answer before it has)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        receipt = await rpc(chain.rpc_url, "eth_getTransactionReceipt", tx)
        if receipt:
            return dict(receipt)
        if time.monotonic() > deadline:
            raise RuntimeError(f"transaction {tx} not mined within {timeout:g} s")
        await asyncio.sleep(0.02)


async def tx_count(chain: DevChain, address: str) -> int:
    """The account's nonce (mined transactions)."""
    return int(await rpc(chain.rpc_url, "eth_getTransactionCount", address, "latest"), 16)


async def funded_payer(chain: DevChain, amount: int = 1_000_000_000) -> str:
    """A fresh payer key holding ``amount`` dev tokens and no ETH."""
    key = new_key()
    await mint(chain, address_of(key), amount)
    return key


def chain_settings(chain: DevChain, database_url: str, signer_key: str, **kw: Any) -> Settings:
    """Settings serving the dev chain with a given facilitator signer."""
    return Settings(
        database_url=database_url,
        networks=(dev_network(chain),),
        evm_signer_key=signer_key,
        log_level="warning",
        reconcile_interval=0,
        **kw,
    )


def dev_network(chain: DevChain, rpc_urls: tuple[str, ...] | None = None) -> NetworkConfig:
    """The dev chain as a configured network."""
    return NetworkConfig(
        network=chain.network,
        rpc_urls=rpc_urls or (chain.rpc_url,),
        assets=(AssetConfig(address=chain.token_address, name=chain.token_name, version=chain.token_version),),
    )


def networks_env(chain: DevChain) -> str:
    """X402_NETWORKS for a subprocess serving the dev chain."""
    return json.dumps(
        {
            chain.network: {
                "rpc_urls": [chain.rpc_url],
                "assets": [{"address": chain.token_address, "name": chain.token_name, "version": chain.token_version}],
            }
        }
    )


async def erc20_transfer(chain: DevChain, payer_key: str, to: str, amount: int) -> str:
    """A plain ERC-20 transfer of dev tokens sent by the payer itself (given ETH for gas), mined; its hash."""
    payer = address_of(payer_key)
    await fund_eth(chain, payer)
    data = "0xa9059cbb" + "00" * 12 + to.lower().removeprefix("0x") + amount.to_bytes(32, "big").hex()
    tx = {
        "to": chain.token_address,
        "data": data,
        "gas": 100_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
        "nonce": await tx_count(chain, payer),
        "chainId": chain.chain_id,
        "type": 2,
        "value": 0,
    }
    signed = Account.sign_transaction(tx, payer_key)
    tx_hash: str = await rpc(chain.rpc_url, "eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    await wait_receipt(chain, tx_hash)
    return tx_hash


@dataclass(frozen=True)
class Transfer:
    """A mined plain transfer from a fresh funded payer to a fresh payTo, and its ``verify-tx`` body."""

    payer_key: str
    pay_to: str
    tx: str
    body: dict[str, Any]


async def paid_transfer(chain: DevChain, amount: int = 50_000) -> Transfer:
    """A fresh payer pays ``amount`` to a fresh address; the ``POST /v1/payments/verify-tx`` body that checks it."""
    payer_key = await funded_payer(chain)
    pay_to = address_of(new_key())
    tx = await erc20_transfer(chain, payer_key, pay_to, amount)
    return Transfer(payer_key, pay_to, tx, verify_tx_body(chain, tx, pay_to, amount))


def verify_tx_body(chain: DevChain, tx: str, pay_to: str, amount: int = 50_000) -> dict[str, Any]:
    """The ``POST /v1/payments/verify-tx`` body for ``tx`` paying ``amount`` dev tokens to ``pay_to``."""
    return {
        "network": chain.network,
        "transaction": tx,
        "payTo": pay_to,
        "asset": chain.token_address,
        "minAmount": str(amount),
        "confirmations": 1,
    }


async def new_payment(chain: DevChain, amount: int = 10_000) -> Payment:
    """A fresh funded payer's signed payment of ``amount`` dev tokens to a fresh payTo (``requirements.pay_to``)."""
    return sign_payment(chain, await funded_payer(chain), requirements(chain, address_of(new_key()), amount))


@contextlib.asynccontextmanager
async def own_devchain() -> AsyncIterator[DevChain]:
    """A private anvil with the dev token, for a test that changes how it mines, its clock or its fees."""
    anvil = AnvilProcess()
    await anvil.start()
    try:
        await deploy_dev_token(anvil.rpc_url)
        yield DevChain(rpc_url=anvil.rpc_url)
    finally:
        await anvil.stop()


async def payer_and_offer(chain: DevChain, amount: int = 10_000) -> tuple[str, PaymentRequirements]:
    """A fresh funded payer key, and requirements of ``amount`` dev tokens to a fresh payTo (``.pay_to``)."""
    return await funded_payer(chain), requirements(chain, address_of(new_key()), amount)
