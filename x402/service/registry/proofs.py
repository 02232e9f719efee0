"""Ownership proofs (x402scan convention): the payTo key signs the exact origin string, e.g. ``https://example.com``.

EVM payTo: EIP-191 ``personal_sign`` (65-byte r||s||v hex), recovered with coincurve. Solana payTo: an ed25519
signature (base58 or hex) checked against the base58-decoded payTo public key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak

_EVM_ADDRESS: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX: Final = re.compile(r"^(0x)?[0-9a-fA-F]+$")
MAX_PROOFS: Final = 16


def eip191_recover(message: str, signature: str) -> str | None:
    """The lower-case address that personal_signed ``message``, or None for a malformed signature."""
    raw = _hex_bytes(signature)
    if raw is None or len(raw) != 65:
        return None
    v = raw[64]
    recid = v - 27 if v >= 27 else v
    if recid not in (0, 1):
        return None
    signable = encode_defunct(text=message)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    try:
        pub = coincurve.PublicKey.from_signature_and_message(raw[:64] + bytes([recid]), digest, hasher=None)
    except (ValueError, TypeError):
        return None
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()


def ed25519_verify(message: str, signature: str, pay_to: str) -> bool:
    """True when ``signature`` (base58 or hex) is the ed25519 signature of ``message`` by base58 ``pay_to``."""
    from solders.pubkey import Pubkey
    from solders.signature import Signature

    try:
        key = bytes(Pubkey.from_string(pay_to))
    except ValueError:
        return False
    sig = _hex_bytes(signature)
    if sig is None or len(sig) != 64:
        try:
            sig = bytes(Signature.from_string(signature))
        except ValueError:
            return False
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, message.encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


def _hex_bytes(value: str) -> bytes | None:
    if not _HEX.fullmatch(value) or len(value) % 2:
        return None
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        return None


def proves(proof: str, origin: str, pay_to: str) -> str | None:
    """The proof kind (``eip191``/``ed25519``) when ``proof`` shows ``pay_to`` signed ``origin``; else None."""
    if _EVM_ADDRESS.fullmatch(pay_to):
        signer = eip191_recover(origin, proof)
        return "eip191" if signer is not None and signer == pay_to.lower() else None
    return "ed25519" if ed25519_verify(origin, proof, pay_to) else None


def proven_pay_tos(proofs: Iterable[str], origin: str, pay_tos: Iterable[str]) -> dict[str, str]:
    """Which payTos some proof covers, with the proof kind (at most MAX_PROOFS proofs are tried)."""
    tried = [p for p in proofs if isinstance(p, str) and p][:MAX_PROOFS]
    out: dict[str, str] = {}
    for pay_to in dict.fromkeys(pay_tos):
        for proof in tried:
            kind = proves(proof, origin, pay_to)
            if kind:
                out[pay_to] = kind
                break
    return out
