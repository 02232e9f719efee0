"""The direct type-2 signer gives byte-for-byte what eth-account gives (raw transaction and hash)."""

from __future__ import annotations

import secrets
from typing import Any

import coincurve
import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from chains.evm.txsign import rlp_bytes, rlp_int, rlp_list, sign_type2


def test_rlp_known_vectors() -> None:
    assert rlp_int(0) == b"\x80"
    assert rlp_int(15) == b"\x0f"
    assert rlp_int(1024) == b"\x82\x04\x00"
    assert rlp_bytes(b"dog") == b"\x83dog"
    assert rlp_list([rlp_bytes(b"cat"), rlp_bytes(b"dog")]) == b"\xc8\x83cat\x83dog"
    assert rlp_list([]) == b"\xc0"
    long = b"x" * 56
    assert rlp_bytes(long) == b"\xb8\x38" + long
    with pytest.raises(ValueError):
        rlp_int(-1)


@pytest.mark.parametrize("data_len", [0, 1, 55, 56, 228, 1000])
def test_type2_signature_matches_eth_account(data_len: int) -> None:
    for _ in range(5):
        key = "0x" + secrets.token_hex(32)
        account = Account.from_key(key)
        tx: dict[str, Any] = {
            "chainId": secrets.choice([1, 8453, 31337, 84532]),
            "nonce": secrets.randbelow(2**20) if data_len else 0,
            "to": to_checksum_address("0x" + secrets.token_hex(20)),
            "value": secrets.choice([0, 1, 10**18]),
            "data": "0x" + secrets.token_hex(data_len),
            "gas": 21_000 + secrets.randbelow(200_000),
            "type": 2,
            "maxFeePerGas": secrets.randbelow(10**12) + 1,
            "maxPriorityFeePerGas": secrets.randbelow(10**9),
        }
        expected = account.sign_transaction(tx)
        got = sign_type2(
            coincurve.PrivateKey(bytes.fromhex(key[2:])),
            chain_id=tx["chainId"],
            nonce=tx["nonce"],
            max_priority_fee=tx["maxPriorityFeePerGas"],
            max_fee=tx["maxFeePerGas"],
            gas=tx["gas"],
            to=bytes.fromhex(tx["to"][2:]),
            value=tx["value"],
            data=bytes.fromhex(tx["data"][2:]),
        )
        assert got.raw == bytes(expected.raw_transaction)
        assert got.tx_hash == bytes(expected.hash)
        assert Account.recover_transaction(got.raw) == account.address
