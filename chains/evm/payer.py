"""The EVM payer: signs EIP-3009 ``TransferWithAuthorization`` payloads like official clients (architecture.md §4.3).

Implements the ``x402.client.PaymentSigner`` protocol structurally (chains never import the client or web layer).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any, Final

import coincurve
from eth_hash.auto import keccak

from chains.evm.eip712 import address_bytes, domain_separator, to_checksum_address, transfer_digest
from x402.errors import PaymentRefused
from x402.wire.assets import find_asset
from x402.wire.models import PaymentRequirements
from x402.wire.networks import evm_chain_id, is_evm

#: v1 clients back-date ``validAfter`` by ten minutes to absorb clock skew; v2 clients send "0".
V1_VALID_AFTER_SKEW: Final = 600


class EvmSigner:
    """Pays ``exact`` offers on any ``eip155`` network with one private key (no RPC access needed)."""

    networks: Sequence[str] = ("eip155:*",)

    def __init__(self, private_key: str | bytes) -> None:
        raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
        if len(raw) != 32:
            raise ValueError("an EVM private key is 32 bytes")
        self._key = coincurve.PrivateKey(raw)
        public = self._key.public_key.format(compressed=False)[1:]
        self._address = to_checksum_address(keccak(public)[-20:])

    def __repr__(self) -> str:
        return f"EvmSigner({self._address})"

    @property
    def address(self) -> str:
        """The checksummed payer address."""
        return self._address

    def sign_in_message(self, message: str) -> str:
        """EIP-191 ``personal_sign`` of a Sign-In-With-X message (0x-hex r||s||v, v 27/28)."""
        body = message.encode("utf-8")
        digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(body)).encode() + body)
        sig = self._key.sign_recoverable(digest, hasher=None)
        return "0x" + (sig[:64] + bytes([sig[64] + 27])).hex()

    def can_pay(self, requirements: PaymentRequirements) -> bool:
        """An ``exact`` EIP-3009 offer on an EVM network whose EIP-712 domain we know."""
        if requirements.scheme != "exact" or not is_evm(requirements.network):
            return False
        if requirements.extra.get("assetTransferMethod", "eip3009") != "eip3009":
            return False
        return _domain(requirements) is not None

    async def create_payload(self, requirements: PaymentRequirements, x402_version: int) -> dict[str, Any]:
        """``{signature, authorization}`` paying ``requirements`` (v2 shape; ``x402_version`` sets validAfter)."""
        domain = _domain(requirements)
        if domain is None:
            raise PaymentRefused(
                f"no EIP-712 name/version for {requirements.asset} on {requirements.network}",
                code="missing_eip712_domain",
            )
        name, version = domain
        now = int(time.time())
        valid_after = 0 if x402_version >= 2 else now - V1_VALID_AFTER_SKEW
        valid_before = now + requirements.max_timeout_seconds
        nonce = secrets.token_bytes(32)
        to = to_checksum_address(address_bytes(requirements.pay_to))
        value = int(requirements.amount)
        separator = domain_separator(name, version, evm_chain_id(requirements.network), requirements.asset)
        digest = transfer_digest(separator, self._address, to, value, valid_after, valid_before, nonce)
        sig = self._key.sign_recoverable(digest, hasher=None)  # r || s || recovery id, low-s
        signature = sig[:64] + bytes([sig[64] + 27])
        return {
            "signature": "0x" + signature.hex(),
            "authorization": {
                "from": self._address,
                "to": to,
                "value": str(value),
                "validAfter": str(valid_after),
                "validBefore": str(valid_before),
                "nonce": "0x" + nonce.hex(),
            },
        }


def _domain(requirements: PaymentRequirements) -> tuple[str, str] | None:
    """EIP-712 name/version from ``extra``, else from the default-asset table (as the Python SDK falls back)."""
    name, version = requirements.extra.get("name"), requirements.extra.get("version")
    if isinstance(name, str) and isinstance(version, str) and name and version:
        return name, version
    known = find_asset(requirements.network, requirements.asset)
    if known is None or not known.name:
        return None
    return known.name, known.version
