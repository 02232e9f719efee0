"""Wallet key material: generation (EVM secp256k1, Solana ed25519), sealing under the keyring, signers in memory."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import coincurve
from eth_hash.auto import keccak
from solders.keypair import Keypair

from chains.evm.eip712 import to_checksum_address
from chains.evm.payer import EvmSigner
from chains.solana.rpc import SolanaRpcPool
from chains.solana.signer import SvmSigner
from wallets.custody import Keyring, Sealed
from x402.client.signer import PaymentSigner
from x402.errors import ValidationFailed

CHAINS: Final = ("evm", "svm")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key to store: chain family, public address, and the secret (held only until it is sealed)."""

    chain: str
    address: str
    secret: bytes

    def __repr__(self) -> str:
        return f"NewKey({self.chain}, {self.address})"


def aad(wallet_id: uuid.UUID, chain: str) -> bytes:
    """Associated data binding a ciphertext to its wallet and chain (a row copied elsewhere will not open)."""
    return f"x402-wallet:{wallet_id}:{chain}".encode()


def evm_address(secret: bytes) -> str:
    """The checksummed address of a 32-byte secp256k1 private key."""
    public = coincurve.PrivateKey(secret).public_key.format(compressed=False)[1:]
    return to_checksum_address(keccak(public)[-20:])


def generate(chain: str) -> NewKey:
    """A fresh random key for ``evm`` or ``svm``."""
    if chain == "evm":
        secret = coincurve.PrivateKey().secret
        return NewKey("evm", evm_address(secret), secret)
    if chain == "svm":
        kp = Keypair()
        return NewKey("svm", str(kp.pubkey()), bytes(kp))
    raise ValidationFailed(f"unknown chain {chain!r}; known: {list(CHAINS)}", code="invalid_chain")


def imported(chain: str, text: str) -> NewKey:
    """A key given by the caller: EVM as 0x-hex, Solana as base58 (64-byte keypair) or a JSON byte array."""
    try:
        if chain == "evm":
            raw = bytes.fromhex(text.removeprefix("0x"))
            if len(raw) != 32:
                raise ValueError
            return NewKey("evm", evm_address(raw), raw)
        if chain == "svm":
            stripped = text.strip()
            if stripped.startswith("["):
                import json

                kp = Keypair.from_bytes(bytes(json.loads(stripped)))
            else:
                kp = Keypair.from_base58_string(stripped)
            return NewKey("svm", str(kp.pubkey()), bytes(kp))
    except Exception:  # noqa: S110 - solders raises its own error types; the generic error below follows
        pass
    # never echo the input: it is a private key
    raise ValidationFailed(f"the imported {chain} key is not valid", code="invalid_key")


def seal(keyring: Keyring, wallet_id: uuid.UUID, key: NewKey) -> Sealed:
    """Encrypt a key for storage."""
    return keyring.seal(key.secret, aad=aad(wallet_id, key.chain))


def signer(
    keyring: Keyring,
    wallet_id: uuid.UUID,
    chain: str,
    sealed: Sealed,
    *,
    svm_rpc: Mapping[str, SolanaRpcPool | Sequence[str]] | None = None,
) -> PaymentSigner:
    """A payment signer holding the decrypted key in memory only (never stored, logged or returned)."""
    secret = keyring.unseal(sealed, aad=aad(wallet_id, chain))
    if chain == "evm":
        return EvmSigner(secret)
    return SvmSigner(Keypair.from_bytes(secret), svm_rpc or {})
