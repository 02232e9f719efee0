"""EIP-3009 TransferWithAuthorization hashing and recovery: the spec vector and eth-account agreement."""

from __future__ import annotations

import random
import secrets
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak

from chains.evm.eip712 import (
    SECP256K1_N,
    TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
    domain_separator,
    is_high_s,
    recover_address,
    to_checksum_address,
    transfer_digest,
    transfer_struct_hash,
)
from tests.harness.evm import TRANSFER_TYPES

# architecture.md §8.1: the signature of the transport-spec header examples (coinbase/x402 specs/transports-v*/http.md).
TOKEN = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
FROM = "0x857b06519E91e3A54538791bDbb0E22373e36b66"
TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
NONCE = bytes.fromhex("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480")
SIG = bytes.fromhex(
    "2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c"
)
MSG = (FROM, TO, 10000, 1740672089, 1740672154, NONCE)


def test_typehash() -> None:
    assert (
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH.hex() == "7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"
    )


def test_spec_vector() -> None:
    dsep = domain_separator("USDC", "2", 84532, TOKEN)
    assert dsep.hex() == "71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818"
    assert transfer_struct_hash(*MSG).hex() == "49ad644555c7bdf3ea4fc022a4940ae5589b230b1dde0065c5504fa19bbe39a4"
    digest = transfer_digest(dsep, *MSG)
    assert digest.hex() == "f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6"
    assert recover_address(digest, SIG) == FROM
    assert recover_address(digest, SIG[:64] + bytes([SIG[64] - 27])) == FROM  # v as 0/1
    assert domain_separator("USDC", "2", 84532, TOKEN.lower()) == dsep


@pytest.mark.parametrize(("name", "chain_id"), [("USD Coin", 84532), ("USDC", 8453)])
def test_wrong_domain_recovers_someone_else(name: str, chain_id: int) -> None:
    digest = transfer_digest(domain_separator(name, "2", chain_id, TOKEN), *MSG)
    other = recover_address(digest, SIG)
    assert other is not None
    assert other != FROM


def test_malformed_signatures_give_none() -> None:
    digest = transfer_digest(domain_separator("USDC", "2", 84532, TOKEN), *MSG)
    assert recover_address(digest, SIG[:64]) is None
    assert recover_address(digest, SIG + b"\x00") is None
    assert recover_address(digest, SIG[:64] + b"\x1d") is None  # v = 29
    assert recover_address(digest, SIG[:64] + b"\x02") is None
    assert recover_address(digest, bytes(64) + b"\x1b") is None  # r = s = 0
    assert recover_address(digest, SECP256K1_N.to_bytes(32, "big") + SIG[32:]) is None  # r = n
    assert recover_address(digest[:31], SIG) is None
    assert recover_address(b"", b"") is None


def test_high_s_is_permissive_unless_asked() -> None:
    digest = transfer_digest(domain_separator("USDC", "2", 84532, TOKEN), *MSG)
    s = int.from_bytes(SIG[32:64], "big")
    flipped = SIG[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - SIG[64]])  # 27 <-> 28
    assert not is_high_s(SIG)
    assert is_high_s(flipped)
    assert recover_address(digest, flipped) == FROM
    assert recover_address(digest, flipped, allow_high_s=False) is None
    assert recover_address(digest, SIG, allow_high_s=False) == FROM


def test_bad_inputs_raise_value_error() -> None:
    dsep = domain_separator("USDC", "2", 84532, TOKEN)
    with pytest.raises(ValueError):
        transfer_digest(dsep, "0x1234", TO, 1, 0, 1, NONCE)
    with pytest.raises(ValueError):
        transfer_digest(dsep, FROM, TO, -1, 0, 1, NONCE)
    with pytest.raises(ValueError):
        transfer_digest(dsep, FROM, TO, 2**256, 0, 1, NONCE)
    with pytest.raises(ValueError):
        transfer_digest(dsep, FROM, TO, 1, 0, 1, NONCE[:31])
    with pytest.raises(ValueError):
        domain_separator("USDC", "2", 1, "0xzz" + TOKEN[4:])


def test_checksum_matches_eip55() -> None:
    assert to_checksum_address(bytes.fromhex(FROM[2:].lower())) == FROM
    assert to_checksum_address(bytes.fromhex(TOKEN[2:])) == TOKEN


def _typed(domain: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    return {
        **TRANSFER_TYPES,
        "domain": domain,
        "message": message,
    }


def test_agrees_with_eth_account_for_random_keys() -> None:
    rng = random.Random(3009)
    for i in range(50):
        acct = Account.from_key(rng.randbytes(32))
        token = to_checksum_address(rng.randbytes(20))
        to = to_checksum_address(rng.randbytes(20))
        name, version = rng.choice([("USD Coin", "2"), ("USDC", "2"), ("USDT0", "1"), ("Tést ✓", "")])
        chain_id = rng.choice([1, 8453, 84532, 31337, 2**64 + i])
        value = rng.choice([0, 1, 10_000, 2**256 - 1, rng.randrange(2**128)])
        valid_after, valid_before = rng.randrange(2**32), rng.randrange(2**40)
        nonce = secrets.token_bytes(32)
        domain = {"name": name, "version": version, "chainId": chain_id, "verifyingContract": token}
        message = {
            "from": acct.address,
            "to": to,
            "value": value,
            "validAfter": valid_after,
            "validBefore": valid_before,
            "nonce": "0x" + nonce.hex(),
        }
        typed = _typed(domain, message)
        signable = encode_typed_data(full_message=typed)
        dsep = domain_separator(name, version, chain_id, token)
        assert signable.header == dsep
        assert signable.body == transfer_struct_hash(acct.address, to, value, valid_after, valid_before, nonce)
        digest = transfer_digest(dsep, acct.address, to, value, valid_after, valid_before, nonce)
        assert digest == keccak(b"\x19\x01" + signable.header + signable.body)
        sig = bytes(Account.sign_typed_data(acct.key, full_message=typed).signature)
        ours = recover_address(digest, sig)
        assert ours == acct.address == Account.recover_message(signable, signature=sig)
        bogus = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
        assert recover_address(digest, bogus) != acct.address
