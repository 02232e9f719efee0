"""Signing an EIP-1559 (type 2) transaction without eth-account's generic path.

eth-account validates and serialises a transaction dict through several layers (about 2-5 ms of CPU per signature);
a settlement signs under its signer lane's lock, so that time serialises the lane. Here the fields are RLP-encoded
directly, hashed with keccak and signed with libsecp256k1 (coincurve: RFC 6979 nonces, low-s), which gives the
same bytes as eth-account (tests/evm/test_txsign.py compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

import coincurve
from eth_hash.auto import keccak


def _length(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def rlp_bytes(value: bytes) -> bytes:
    """RLP of a byte string."""
    if len(value) == 1 and value[0] < 0x80:
        return value
    return _length(len(value), 0x80) + value


def rlp_int(value: int) -> bytes:
    """RLP of a non-negative integer (big-endian, no leading zeros; 0 is the empty string)."""
    if value < 0:
        raise ValueError("RLP integers are non-negative")
    return rlp_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b"")


def rlp_list(encoded: list[bytes]) -> bytes:
    """RLP of a list of already encoded items."""
    payload = b"".join(encoded)
    return _length(len(payload), 0xC0) + payload


@dataclass(frozen=True, slots=True)
class SignedTx:
    raw: bytes
    tx_hash: bytes


def sign_type2(
    key: coincurve.PrivateKey,
    *,
    chain_id: int,
    nonce: int,
    max_priority_fee: int,
    max_fee: int,
    gas: int,
    to: bytes,
    value: int,
    data: bytes,
) -> SignedTx:
    """A signed type-2 transaction with an empty access list."""
    if len(to) != 20:
        raise ValueError("to must be a 20-byte address")
    fields = [
        rlp_int(chain_id),
        rlp_int(nonce),
        rlp_int(max_priority_fee),
        rlp_int(max_fee),
        rlp_int(gas),
        rlp_bytes(to),
        rlp_int(value),
        rlp_bytes(data),
        rlp_list([]),
    ]
    digest = keccak(b"\x02" + rlp_list(fields))
    sig = key.sign_recoverable(digest, hasher=None)  # r (32) || s (32) || recovery id (1)
    r, s, y_parity = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    raw = b"\x02" + rlp_list([*fields, rlp_int(y_parity), rlp_int(r), rlp_int(s)])
    return SignedTx(raw, keccak(raw))
