"""Permit2 test helpers: a plain EIP-2612 token, approvals, and Permit2 / EIP-2612 signatures made with
eth-account's generic typed-data path (independent of the service's hand-rolled digests)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from chains.config import AssetConfig, NetworkConfig
from chains.evm import permit2 as p2
from chains.evm.devchain import DevChain, deploy_contract
from tests.harness import evm
from x402.wire.models import PaymentPayload, PaymentRequirements, ResourceInfo

MAX_UINT = 2**256 - 1
APPROVE = "0x095ea7b3"  # approve(address,uint256)


@dataclass(frozen=True)
class Token:
    """A deployed PermitERC20 (EIP-2612, no EIP-3009)."""

    address: str
    name: str = "Permit USD"
    version: str = "1"

    def asset(self) -> AssetConfig:
        """As a configured asset."""
        return AssetConfig(address=self.address, name=self.name, version=self.version)


async def deploy_token(chain: DevChain) -> Token:
    """Deploy a PermitERC20 from a fresh funded key (no nonce race with other tests)."""
    key, _ = await evm.funded_signer(chain)
    return Token(await deploy_contract(chain.rpc_url, key, "PermitERC20"))


def network(chain: DevChain, *tokens: Token) -> NetworkConfig:
    """The dev chain with TestUSDC and ``tokens`` as accepted assets."""
    base = evm.dev_network(chain)
    return NetworkConfig(
        network=base.network, rpc_urls=base.rpc_urls, assets=base.assets + tuple(t.asset() for t in tokens)
    )


async def approve_permit2(chain: DevChain, payer_key: str, token: str, amount: int = MAX_UINT) -> None:
    """The payer's one-time ``approve(Permit2, amount)`` (gives the payer gas first)."""
    acct = Account.from_key(payer_key)
    await evm.fund_eth(chain, acct.address, 10**18)
    nonce = int(await evm.rpc(chain.rpc_url, "eth_getTransactionCount", acct.address, "pending"), 16)
    data = APPROVE + "00" * 12 + p2.PERMIT2_ADDRESS.lower()[2:] + amount.to_bytes(32, "big").hex()
    tx = {
        "chainId": chain.chain_id,
        "nonce": nonce,
        "to": token,
        "data": data,
        "gas": 100_000,
        "gasPrice": 10**10,
        "value": 0,
    }
    raw = "0x" + bytes(acct.sign_transaction(tx).raw_transaction).hex()
    await evm.wait_receipt(chain, await evm.rpc(chain.rpc_url, "eth_sendRawTransaction", raw))


async def permit2_payer(chain: DevChain, token: Token | None = None, *, approve: bool = True) -> str:
    """A fresh payer holding tokens (TestUSDC by default), with Permit2 approved unless ``approve`` is False."""
    key = evm.new_key()
    asset = token.address if token else chain.token_address
    await evm.mint(chain, evm.address_of(key), 1_000_000_000, asset)
    if approve:
        await approve_permit2(chain, key, asset)
    return key


def requirements(
    chain: DevChain, pay_to: str, amount: int, *, scheme: str = "upto", token: Token | None = None, **extra: Any
) -> PaymentRequirements:
    """``upto`` (or ``exact`` with assetTransferMethod permit2) requirements for a token of the dev chain."""
    more: dict[str, Any] = {"assetTransferMethod": "permit2"} if scheme == "exact" else {}
    return PaymentRequirements(
        scheme=scheme,
        network=chain.network,
        amount=str(amount),
        asset=token.address if token else chain.token_address,
        pay_to=pay_to,
        max_timeout_seconds=60,
        extra={
            "name": token.name if token else chain.token_name,
            "version": token.version if token else chain.token_version,
            **more,
            **extra,
        },
    )


def sign(
    chain: DevChain,
    payer_key: str,
    req: PaymentRequirements,
    *,
    facilitator: str | None = None,
    amount: int | None = None,
    spender: str | None = None,
    to: str | None = None,
    token: str | None = None,
    deadline: int | None = None,
    valid_after: int = 0,
    nonce: int | None = None,
    extensions: dict[str, Any] | None = None,
) -> evm.Payment:
    """Sign a Permit2 witness transfer (``upto`` when ``req.scheme`` is upto); overrides make invalid payments."""
    upto = req.scheme == "upto"
    acct = Account.from_key(payer_key)
    witness: dict[str, Any] = {"to": to or req.pay_to, "validAfter": valid_after}
    if upto:
        witness = {
            "to": witness["to"],
            "facilitator": facilitator or req.extra["facilitatorAddress"],
            "validAfter": valid_after,
        }
    message: dict[str, Any] = {
        "permitted": {"token": token or req.asset, "amount": int(req.amount) if amount is None else amount},
        "spender": spender or (p2.UPTO_PROXY_ADDRESS if upto else p2.EXACT_PROXY_ADDRESS),
        "nonce": secrets.randbits(256) if nonce is None else nonce,
        "deadline": int(time.time()) + 600 if deadline is None else deadline,
        "witness": witness,
    }
    types = {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        **(p2.TYPES_UPTO if upto else p2.TYPES_EXACT),
    }
    typed = {
        "types": types,
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain.chain_id, "verifyingContract": p2.PERMIT2_ADDRESS},
        "message": message,
    }
    sig = Account.sign_typed_data(payer_key, full_message=typed)
    auth = {
        "from": acct.address,
        "permitted": {"token": message["permitted"]["token"], "amount": str(message["permitted"]["amount"])},
        "spender": message["spender"],
        "nonce": str(message["nonce"]),
        "deadline": str(message["deadline"]),
        "witness": {k: str(v) if k == "validAfter" else v for k, v in witness.items()},
    }
    payload = PaymentPayload(
        resource=ResourceInfo(url="http://127.0.0.1/paid", description="test", mime_type="application/json"),
        accepted=req,
        payload={"signature": "0x" + bytes(sig.signature).hex(), "permit2Authorization": auth},
        extensions=extensions or {},
    )
    return evm.Payment(payload=payload, requirements=req, payer=acct.address)


async def eip2612_extension(chain: DevChain, payer_key: str, token: Token, amount: int) -> dict[str, Any]:
    """The ``eip2612GasSponsoring`` extension: an EIP-2612 permit(payer, Permit2, amount) signed with eth-account."""
    acct = Account.from_key(payer_key)
    data = "0x7ecebe00" + "00" * 12 + acct.address.lower()[2:]  # nonces(address)
    nonce = int(await evm.rpc(chain.rpc_url, "eth_call", {"to": token.address, "data": data}, "latest"), 16)
    deadline = int(time.time()) + 600
    typed = {
        "types": {
            "EIP712Domain": evm.TRANSFER_TYPES["types"]["EIP712Domain"],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": token.name,
            "version": token.version,
            "chainId": chain.chain_id,
            "verifyingContract": token.address,
        },
        "message": {
            "owner": acct.address,
            "spender": p2.PERMIT2_ADDRESS,
            "value": amount,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    sig = Account.sign_typed_data(payer_key, full_message=typed)
    info = {
        "from": acct.address,
        "asset": token.address,
        "spender": p2.PERMIT2_ADDRESS,
        "amount": str(amount),
        "nonce": str(nonce),
        "deadline": str(deadline),
        "signature": "0x" + bytes(sig.signature).hex(),
        "version": "1",
    }
    return {p2.EIP2612_EXTENSION: {"info": info}}


async def approve_permit2_as(chain: DevChain, owner: str, token: str, amount: int = MAX_UINT) -> None:
    """``approve(Permit2, amount)`` from an address whose key the test does not hold (a custodial agent wallet),
    sent by impersonating it on anvil."""
    await evm.rpc(chain.rpc_url, "anvil_impersonateAccount", owner)
    await evm.fund_eth(chain, owner, 10**18)
    data = APPROVE + "00" * 12 + p2.PERMIT2_ADDRESS.lower()[2:] + amount.to_bytes(32, "big").hex()
    tx = await evm.rpc(chain.rpc_url, "eth_sendTransaction", {"from": owner, "to": token, "data": data})
    await evm.wait_receipt(chain, tx)
