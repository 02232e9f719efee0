"""EVM wallet keys (a ``chains.keys.KeyKind``): secp256k1, 0x-hex import, EIP-3009 ``exact`` signing."""

from __future__ import annotations

from collections.abc import Sequence

import coincurve
from eth_hash.auto import keccak

from chains.evm.eip712 import to_checksum_address
from chains.evm.payer import EvmSigner
from chains.keys import KeyPair
from x402.wire.models import PaymentRequirements
from x402.wire.networks import is_evm


def evm_address(secret: bytes) -> str:
    """The checksummed address of a 32-byte secp256k1 private key."""
    public = coincurve.PrivateKey(secret).public_key.format(compressed=False)[1:]
    return to_checksum_address(keccak(public)[-20:])


class EvmKeys:
    """Keys of ``eip155`` networks."""

    name = "evm"
    label = "evm"
    aliases: Sequence[str] = ("eip155",)

    def owns(self, network: str) -> bool:
        """Every ``eip155`` network."""
        return is_evm(network)

    def generate(self) -> KeyPair:
        """A fresh secp256k1 key."""
        secret = coincurve.PrivateKey().secret
        return KeyPair(evm_address(secret), secret)

    def imported(self, text: str) -> KeyPair:
        """A 32-byte private key as (0x-)hex."""
        raw = bytes.fromhex(text.removeprefix("0x"))
        if len(raw) != 32:
            raise ValueError("an EVM private key is 32 bytes")
        return KeyPair(evm_address(raw), raw)

    def can_pay(self, offer: PaymentRequirements) -> bool:
        """``exact`` offers settled by EIP-3009 (the default transfer method)."""
        return offer.scheme == "exact" and offer.extra.get("assetTransferMethod", "eip3009") == "eip3009"

    def signer(self, secret: bytes) -> EvmSigner:
        """An EIP-3009 signer."""
        return EvmSigner(secret)
