"""The EVM payer: signs EIP-3009 ``TransferWithAuthorization`` payloads like official clients (architecture.md §4.3),
and Permit2 witness transfers for ``exact`` by Permit2 and ``upto`` (§4.6, §12.2; the payer approves Permit2 once).

Implements the ``x402.client.PaymentSigner`` protocol structurally (chains never import the client or web layer).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any, Final

import coincurve
from eth_hash.auto import keccak

from chains.evm import permit2 as p2
from chains.evm.eip712 import address_bytes, domain_separator, to_checksum_address, transfer_digest
from x402.errors import PaymentRefused
from x402.wire.assets import find_asset
from x402.wire.models import PaymentRequirements
from x402.wire.networks import evm_chain_id, is_evm

#: v1 clients back-date ``validAfter`` by ten minutes to absorb clock skew; v2 clients send "0".
V1_VALID_AFTER_SKEW: Final = 600


class EvmSigner:
    """Pays ``exact`` (EIP-3009 or Permit2) and ``upto`` offers on any ``eip155`` network with one private key
    (no RPC access needed; Permit2 payments need the payer's one-time ``approve(Permit2)`` of the token)."""

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
        """An EVM offer we can sign: ``exact`` EIP-3009 with a known EIP-712 domain, ``exact`` by Permit2, or
        ``upto`` naming its facilitator (``extra.facilitatorAddress``)."""
        if not is_evm(requirements.network):
            return False
        if requirements.scheme == "upto":
            return isinstance(requirements.extra.get("facilitatorAddress"), str)
        if requirements.scheme != "exact":
            return False
        method = requirements.extra.get("assetTransferMethod", "eip3009")
        if method == "permit2":
            return True
        if method != "eip3009":
            return False
        return _domain(requirements) is not None

    async def create_payload(self, requirements: PaymentRequirements, x402_version: int) -> dict[str, Any]:
        """``{signature, authorization}`` (EIP-3009) or ``{signature, permit2Authorization}`` paying
        ``requirements`` (v2 shape; ``x402_version`` sets an EIP-3009 validAfter)."""
        if requirements.scheme == "upto" or requirements.extra.get("assetTransferMethod") == "permit2":
            return self._permit2_payload(requirements)
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

    def _permit2_payload(self, requirements: PaymentRequirements) -> dict[str, Any]:
        """A Permit2 witness transfer of ``amount`` (``upto``: the maximum) to ``payTo`` through the x402 proxy."""
        upto = requirements.scheme == "upto"
        facilitator = requirements.extra.get("facilitatorAddress") if upto else None
        try:
            facilitator20 = address_bytes(facilitator) if isinstance(facilitator, str) else None
            to20 = address_bytes(requirements.pay_to)
            token20 = address_bytes(requirements.asset)
        except ValueError as exc:
            raise PaymentRefused(f"unusable Permit2 offer: {exc}", code="invalid_payment_requirements") from None
        if upto and facilitator20 is None:
            raise PaymentRefused("an upto offer needs extra.facilitatorAddress", code="invalid_payment_requirements")
        auth = p2.Permit2Authorization(
            from_=self._address,
            from20=address_bytes(self._address),
            token20=token20,
            amount=int(requirements.amount),
            spender20=address_bytes(p2.UPTO_PROXY_ADDRESS if upto else p2.EXACT_PROXY_ADDRESS),
            nonce=secrets.randbits(256),
            deadline=int(time.time()) + requirements.max_timeout_seconds,
            to20=to20,
            valid_after=0,
            facilitator20=facilitator20,
            signature=b"",
        )
        sig = self._key.sign_recoverable(auth.digest(evm_chain_id(requirements.network)), hasher=None)
        witness: dict[str, Any] = {"to": to_checksum_address(to20)}
        if facilitator20 is not None:
            witness["facilitator"] = to_checksum_address(facilitator20)
        witness["validAfter"] = "0"
        return {
            "signature": "0x" + (sig[:64] + bytes([sig[64] + 27])).hex(),
            "permit2Authorization": {
                "from": self._address,
                "permitted": {"token": to_checksum_address(token20), "amount": str(auth.amount)},
                "spender": to_checksum_address(auth.spender20),
                "nonce": str(auth.nonce),
                "deadline": str(auth.deadline),
                "witness": witness,
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
