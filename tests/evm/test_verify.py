"""EvmAdapter.verify on a real anvil: the happy paths and every architecture.md §4.4 reason code."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import msgspec
import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data

from chains.base import PaymentContext
from chains.config import AssetConfig, ChainOptions
from chains.evm.adapter import EvmAdapter, create_adapter
from chains.evm.devchain import DevChain, deploy_contract
from chains.evm.eip712 import domain_separator, recover_address
from chains.evm.verify import ERC6492_MAGIC, Authorization, parse_authorization
from tests.harness.evm import (
    TRANSFER_TYPES,
    Payment,
    address_of,
    dev_network,
    fund_eth,
    funded_payer,
    new_key,
    requirements,
    sign_payment,
)
from x402.wire import reasons

PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"


def ctx_of(payment: Payment, *, version: int = 2, accepted: Any = None, scheme: str = "exact") -> PaymentContext:
    """The PaymentContext the facilitator builds for a signed payment."""
    req = payment.requirements
    return PaymentContext(
        x402_version=version,
        scheme=scheme,
        network=req.network,
        payload=payment.payload.payload,
        requirements=req,
        accepted=accepted if accepted is not None else payment.payload.accepted,
    )


def make_adapter(chain: DevChain, *extra_assets: AssetConfig, signer_key: str | None = None, **net: Any) -> EvmAdapter:
    """An adapter serving the dev chain (plus extra accepted assets) with a fresh signer by default."""
    cfg = dev_network(chain)
    cfg = replace(cfg, assets=cfg.assets + extra_assets, **net)
    return EvmAdapter([cfg], signer_key=signer_key or new_key(), rpc_timeout=5.0)


@pytest.fixture
async def adapter(devchain: DevChain) -> AsyncIterator[EvmAdapter]:
    a = make_adapter(devchain)
    yield a
    await a.close()


@pytest.fixture
async def payer(devchain: DevChain) -> str:
    return await funded_payer(devchain)


def with_payload(payment: Payment, **changes: Any) -> Payment:
    """A copy of the payment with payload fields (or authorization fields) replaced."""
    inner = dict(payment.payload.payload)
    auth = dict(inner["authorization"])
    for k, v in changes.items():
        if k == "signature":
            inner["signature"] = v
        elif v is None:
            auth.pop(k, None)
        else:
            auth[k] = v
    inner["authorization"] = auth
    return Payment(msgspec.structs.replace(payment.payload, payload=inner), payment.requirements, payment.payer)


async def test_happy_path_v2(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO))
    out = await adapter.verify(ctx_of(p))
    assert out.is_valid, out
    assert out.payer == address_of(payer)
    assert (await adapter.verify(ctx_of(p), simulate=False)).is_valid


async def test_happy_path_v1(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO), valid_after=int(time.time()) - 600)
    out = await adapter.verify(ctx_of(p, version=1))
    assert out.is_valid, out


async def test_warm_verify_is_one_rpc(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    req = requirements(devchain, PAY_TO)
    assert (await adapter.verify(ctx_of(sign_payment(devchain, payer, req)))).is_valid  # warms the asset cache
    pool = adapter.pool(devchain.network)
    before = pool.calls
    for _ in range(5):
        assert (await adapter.verify(ctx_of(sign_payment(devchain, payer, req)))).is_valid
    assert pool.calls - before == 5


async def _reason(adapter: EvmAdapter, p: Payment, **kw: Any) -> str | None:
    out = await adapter.verify(ctx_of(p, **kw))
    assert not out.is_valid
    return out.reason


async def test_wrong_recipient(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO), to=address_of(new_key()))
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_RECIPIENT_MISMATCH


async def test_expired(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO), valid_before=int(time.time()) + 3)
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_BEFORE


async def test_not_yet_valid(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO), valid_after=int(time.time()) + 120)
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_AFTER


async def test_amount_mismatch_v2_and_v1(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO, amount=10_000), value=20_000)
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALUE_MISMATCH
    assert await _reason(adapter, p, version=1) == reasons.INVALID_EXACT_EVM_AUTHORIZATION_VALUE


async def test_bad_signature(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO))
    sig = bytearray.fromhex(p.payload.payload["signature"][2:])
    sig[5] ^= 0x01
    bad = with_payload(p, signature="0x" + sig.hex())
    out = await adapter.verify(ctx_of(bad))
    assert out.reason == reasons.INVALID_EXACT_EVM_SIGNATURE
    assert out.payer == address_of(payer)
    # Signed by someone else, claiming to be the payer.
    other = sign_payment(devchain, new_key(), requirements(devchain, PAY_TO))
    forged = with_payload(other, **{"from": address_of(payer)})
    assert await _reason(adapter, forged) == reasons.INVALID_EXACT_EVM_SIGNATURE


async def test_wrong_eip712_name(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    # Client and requirements agree on a name the token does not have: the simulation fails, diagnosis says why.
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO, name="Wrong Coin"))
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_TOKEN_NAME_MISMATCH
    # Requirements carry a wrong name but the client signed the token's real domain: signature step diagnoses it.
    req = requirements(devchain, PAY_TO, name="Wrong Coin")
    p2 = sign_payment(devchain, payer, req, name=devchain.token_name)
    assert await _reason(adapter, p2) == reasons.INVALID_EXACT_EVM_TOKEN_NAME_MISMATCH


async def test_wrong_eip712_version(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO, version="1"))
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_TOKEN_VERSION_MISMATCH


async def test_nonce_already_used(devchain: DevChain, payer: str) -> None:
    signer = new_key()
    await fund_eth(devchain, address_of(signer))
    adapter = make_adapter(devchain, signer_key=signer)
    try:
        p = sign_payment(devchain, payer, requirements(devchain, PAY_TO))
        ctx = ctx_of(p)
        prepared = await adapter.prepare_settlement(ctx)
        await adapter.broadcast(devchain.network, prepared)
        assert (await adapter.confirm(ctx, devchain.network, prepared.tx_id, timeout=10)).status == "confirmed"
        assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_NONCE_ALREADY_USED
    finally:
        await adapter.close()


async def test_insufficient_balance(devchain: DevChain, adapter: EvmAdapter) -> None:
    p = sign_payment(devchain, new_key(), requirements(devchain, PAY_TO))
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_INSUFFICIENT_BALANCE


async def test_asset_not_a_contract(devchain: DevChain, payer: str) -> None:
    nowhere = address_of(new_key())
    adapter = make_adapter(devchain, AssetConfig(address=nowhere, name="USD Coin", version="2"))
    try:
        req = msgspec.structs.replace(requirements(devchain, PAY_TO), asset=nowhere)
        p = sign_payment(devchain, payer, req)
        assert await _reason(adapter, p) == reasons.ASSET_NOT_DEPLOYED_CONTRACT
    finally:
        await adapter.close()


async def test_asset_not_accepted(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    req = msgspec.structs.replace(requirements(devchain, PAY_TO), asset=address_of(new_key()))
    assert await _reason(adapter, sign_payment(devchain, payer, req)) == reasons.INVALID_PAYMENT_REQUIREMENTS


async def test_network_mismatch(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO))
    accepted = msgspec.structs.replace(p.requirements, network="eip155:8453")
    assert await _reason(adapter, p, accepted=accepted) == reasons.INVALID_EXACT_EVM_NETWORK_MISMATCH


async def test_unsupported_scheme(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO))
    assert await _reason(adapter, p, scheme="upto") == reasons.INVALID_EXACT_EVM_SCHEME


async def test_missing_domain(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    req = msgspec.structs.replace(requirements(devchain, PAY_TO), extra={"name": "USD Coin"})
    p = sign_payment(devchain, payer, req, version="2")
    assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_MISSING_EIP712_DOMAIN


async def test_eip3009_not_supported(devchain: DevChain, payer: str) -> None:
    deployer = new_key()
    await fund_eth(devchain, address_of(deployer))
    plain = await deploy_contract(devchain.rpc_url, deployer, "PlainERC20")
    adapter = make_adapter(devchain, AssetConfig(address=plain, name="Plain Token", version="1"))
    try:
        req = msgspec.structs.replace(
            requirements(devchain, PAY_TO), asset=plain, extra={"name": "Plain Token", "version": "1"}
        )
        p = sign_payment(devchain, payer, req)
        assert await _reason(adapter, p) == reasons.INVALID_EXACT_EVM_EIP3009_NOT_SUPPORTED
    finally:
        await adapter.close()


async def test_malformed_payloads(devchain: DevChain, adapter: EvmAdapter, payer: str) -> None:
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO))
    assert await _reason(adapter, with_payload(p, value="-1")) == reasons.INVALID_PAYLOAD
    assert await _reason(adapter, with_payload(p, nonce="0x1234")) == reasons.INVALID_PAYLOAD
    assert await _reason(adapter, with_payload(p, to=None)) == reasons.INVALID_PAYLOAD
    bad_sig = with_payload(p, signature="0xzz")
    assert await _reason(adapter, bad_sig) == reasons.INVALID_EXACT_EVM_FAILED_TO_PARSE_SIGNATURE
    permit2 = Payment(
        msgspec.structs.replace(p.payload, payload={"signature": "0x00", "permit2Authorization": {}}),
        p.requirements,
        p.payer,
    )
    assert await _reason(adapter, permit2) == reasons.UNSUPPORTED_PAYLOAD_TYPE


async def test_erc6492_factory_not_allowed(devchain: DevChain, payer: str) -> None:
    factory = address_of(new_key())
    p = sign_payment(devchain, payer, requirements(devchain, PAY_TO))
    wallet = address_of(new_key())  # counterfactual: no code yet
    inner = bytes.fromhex(p.payload.payload["signature"][2:])
    wrapped = abi_encode(["address", "bytes", "bytes"], [factory, b"\x01\x02", inner]) + ERC6492_MAGIC
    w = with_payload(p, signature="0x" + wrapped.hex(), **{"from": wallet})
    adapter = make_adapter(devchain)
    allowed = make_adapter(devchain, eip6492_factories=(factory,))
    try:
        assert await _reason(adapter, w) == reasons.EIP6492_FACTORY_NOT_ALLOWED
        # Allowed factory: we do not simulate counterfactual deployments, so the signature cannot be accepted.
        assert await _reason(allowed, w) == reasons.INVALID_EXACT_EVM_SIGNATURE
    finally:
        await adapter.close()
        await allowed.close()


async def test_fast_recovery_matches_eth_account(devchain: DevChain) -> None:
    for _ in range(20):
        key = new_key()
        req = requirements(devchain, address_of(new_key()), amount=secrets.randbelow(10**12))
        p = sign_payment(devchain, key, req, valid_after=secrets.randbelow(10**9), nonce="0x" + secrets.token_hex(32))
        auth = parse_authorization(p.payload.payload)
        assert isinstance(auth, Authorization)
        dsep = domain_separator(devchain.token_name, devchain.token_version, devchain.chain_id, req.asset)
        digest = auth.digest(dsep)
        a = p.payload.payload["authorization"]
        typed = {
            **TRANSFER_TYPES,
            "domain": {
                "name": devchain.token_name,
                "version": devchain.token_version,
                "chainId": devchain.chain_id,
                "verifyingContract": req.asset,
            },
            "message": {
                "from": a["from"],
                "to": a["to"],
                "value": int(a["value"]),
                "validAfter": int(a["validAfter"]),
                "validBefore": int(a["validBefore"]),
                "nonce": bytes.fromhex(a["nonce"][2:]),
            },
        }
        signable = encode_typed_data(full_message=typed)
        sig = bytes.fromhex(p.payload.payload["signature"][2:])
        assert recover_address(digest, sig) == Account.recover_message(signable, signature=sig) == address_of(key)
        assert auth.recovers_to_payer(digest)


def test_supported_kinds_and_signers(devchain: DevChain) -> None:
    key = new_key()
    base = dev_network(devchain)
    nets = [base, replace(base, network="eip155:84532")]
    a = create_adapter(ChainOptions(evm_signer_key=key), nets)
    assert a is not None
    kinds = {(k.x402_version, k.network) for k in a.supported_kinds()}
    assert kinds == {(2, "eip155:31337"), (2, "eip155:84532"), (1, "base-sepolia")}
    assert a.signers() == {"eip155:*": [address_of(key)]}
    assert key[2:] not in repr(a)
    no_signer = create_adapter(ChainOptions(), nets)
    assert no_signer is not None
    assert no_signer.supported_kinds() == []
    assert no_signer.signers() == {}
    assert create_adapter(ChainOptions(), []) is None


async def test_health(devchain: DevChain, adapter: EvmAdapter) -> None:
    assert await adapter.check_health() == {devchain.network: True}
    wrong = EvmAdapter([replace(dev_network(devchain), network="eip155:1")], signer_key=None)
    try:
        assert await wrong.check_health() == {"eip155:1": False}
    finally:
        await wrong.close()
