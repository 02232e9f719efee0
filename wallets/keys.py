"""Wallet key material: generation and import through the chain's key kind (chains/keys.py), sealing, signers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from chains.evm.keys import EvmKeys
from chains.keys import KeyKind, KeyKinds
from chains.solana.keys import SolanaKeys
from chains.solana.rpc import SolanaRpcPool
from wallets.custody import Keyring, Sealed
from x402.client.signer import PaymentSigner
from x402.errors import ValidationFailed


def builtin_kinds(svm_rpc: Mapping[str, SolanaRpcPool] | None = None) -> KeyKinds:
    """EVM and Solana keys (Solana signers use ``svm_rpc``); adapters add theirs with ``KeyKinds.with_sources``."""
    return KeyKinds([EvmKeys(), SolanaKeys(svm_rpc)])


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key to store: its kind's name, public address, and the secret (held only until it is sealed)."""

    chain: str
    address: str
    secret: bytes

    def __repr__(self) -> str:
        return f"NewKey({self.chain}, {self.address})"


def aad(wallet_id: uuid.UUID, chain: str) -> bytes:
    """Associated data binding a ciphertext to its wallet and chain (a row copied elsewhere will not open)."""
    return f"x402-wallet:{wallet_id}:{chain}".encode()


def generate(kind: KeyKind) -> NewKey:
    """A fresh random key of ``kind``."""
    pair = kind.generate()
    return NewKey(kind.name, pair.address, pair.secret)


def imported(kind: KeyKind, text: str) -> NewKey:
    """A key given by the caller in ``kind``'s text form (e.g. EVM 0x-hex, Solana base58)."""
    try:
        pair = kind.imported(text)
    except Exception:
        # never echo the input: it is a private key
        raise ValidationFailed(f"the imported {kind.label} key is not valid", code="invalid_key") from None
    return NewKey(kind.name, pair.address, pair.secret)


def seal(keyring: Keyring, wallet_id: uuid.UUID, key: NewKey) -> Sealed:
    """Encrypt a key for storage."""
    return keyring.seal(key.secret, aad=aad(wallet_id, key.chain))


def signer(keyring: Keyring, wallet_id: uuid.UUID, kind: KeyKind, sealed: Sealed) -> PaymentSigner:
    """A payment signer holding the decrypted key in memory only (never stored, logged or returned)."""
    return kind.signer(keyring.unseal(sealed, aad=aad(wallet_id, kind.name)))
