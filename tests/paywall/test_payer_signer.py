"""EvmSigner produces what the official clients produce, byte-identical to eth-account's typed-data signing."""

from __future__ import annotations

import time
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from chains.evm.payer import EvmSigner
from tests.harness.evm import TRANSFER_TYPES
from x402.wire.models import PaymentRequirements

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def _req(**kw: Any) -> PaymentRequirements:
    base: dict[str, Any] = {
        "scheme": "exact",
        "network": "eip155:84532",
        "amount": "10000",
        "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "pay_to": "0x209693bc6afc0c5328ba36faf03c514ef312287c",
        "max_timeout_seconds": 60,
        "extra": {"name": "USDC", "version": "2"},
    }
    base.update(kw)
    return PaymentRequirements(**base)


def _typed(req: PaymentRequirements, auth: dict[str, str], chain_id: int) -> dict[str, object]:
    return {
        **TRANSFER_TYPES,
        "domain": {
            "name": req.extra["name"],
            "version": req.extra["version"],
            "chainId": chain_id,
            "verifyingContract": req.asset,
        },
        "message": {
            "from": auth["from"],
            "to": auth["to"],
            "value": int(auth["value"]),
            "validAfter": int(auth["validAfter"]),
            "validBefore": int(auth["validBefore"]),
            "nonce": bytes.fromhex(auth["nonce"][2:]),
        },
    }


async def test_v2_payload_matches_eth_account() -> None:
    signer = EvmSigner(KEY)
    req = _req()
    now = int(time.time())
    payload = await signer.create_payload(req, 2)
    auth = payload["authorization"]
    assert auth["from"] == Account.from_key(KEY).address == signer.address
    assert auth["to"] == "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"  # checksummed payTo
    assert auth["value"] == "10000"
    assert auth["validAfter"] == "0"
    assert now + 60 <= int(auth["validBefore"]) <= now + 62
    assert len(auth["nonce"]) == 66
    expected = Account.sign_typed_data(KEY, full_message=_typed(req, auth, 84532))
    assert payload["signature"] == "0x" + bytes(expected.signature).hex()
    recovered = Account.recover_message(
        encode_typed_data(full_message=_typed(req, auth, 84532)), signature=payload["signature"]
    )
    assert recovered == signer.address
    assert payload["signature"][-2:] in ("1b", "1c")


async def test_v1_backdates_valid_after_and_uses_default_domain() -> None:
    signer = EvmSigner(KEY)
    req = _req(extra={})  # falls back to the default-asset table, as the Python SDK does
    assert signer.can_pay(req)
    now = int(time.time())
    payload = await signer.create_payload(req, 1)
    auth = payload["authorization"]
    assert now - 602 <= int(auth["validAfter"]) <= now - 600
    expected = Account.sign_typed_data(KEY, full_message=_typed(_req(), auth, 84532))
    assert payload["signature"] == "0x" + bytes(expected.signature).hex()
    assert not signer.can_pay(_req(extra={}, asset="0x" + "12" * 20))
    assert not signer.can_pay(_req(network="solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"))
    # Permit2 (exact) and upto are signed too (tests/evm/test_permit2.py); an unknown transfer method is not
    assert signer.can_pay(_req(extra={"name": "USDC", "version": "2", "assetTransferMethod": "permit2"}))
    assert not signer.can_pay(_req(extra={"name": "USDC", "version": "2", "assetTransferMethod": "erc7710"}))
    assert not signer.can_pay(_req(scheme="upto"))  # upto needs extra.facilitatorAddress
