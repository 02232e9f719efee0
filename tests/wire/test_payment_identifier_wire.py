"""The payment-identifier wire helpers: the official layout, id rules, fingerprints."""

from __future__ import annotations

import pytest

from x402.wire import payment_identifier as pid


def test_declaration_is_the_official_layout() -> None:
    # the shape @x402/extensions' declarePaymentIdentifierExtension(true) produces
    assert pid.declaration(True) == {
        "info": {"required": True},
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "required": {"type": "boolean"},
                "id": {"type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[a-zA-Z0-9_-]+$"},
            },
            "required": ["required"],
        },
    }


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a" * 16, True),
        ("A-z_09" * 20 + "abcdefgh", True),  # 128
        ("a" * 15, False),
        ("a" * 129, False),
        ("pay_with space_0123", False),
        ("pay_ünïcödé_012345", False),
        ("pay_0123456789abcdef\n", False),
        (12345678901234567, False),
    ],
)
def test_id_rules(value: object, ok: bool) -> None:
    assert pid.is_valid_id(value) is ok


def test_extract_and_with_id() -> None:
    assert pid.extract(None) == (None, False)
    assert pid.extract({"bazaar": {}}) == (None, False)
    assert pid.extract({pid.KEY: pid.declaration(True)}) == (None, True)
    declared = {"bazaar": {"info": {}}, pid.KEY: pid.declaration(False)}
    sent = pid.with_id(declared, "pay_0123456789abcdef")
    assert sent is not None
    assert pid.extract(sent) == ("pay_0123456789abcdef", False)
    assert sent["bazaar"] == declared["bazaar"]
    assert "id" not in declared[pid.KEY]["info"]  # the challenge's own declaration is left alone
    assert pid.with_id({"bazaar": {}}, "pay_0123456789abcdef") == {"bazaar": {}}  # not declared: not sent
    with pytest.raises(ValueError, match="16-128"):
        pid.with_id(declared, "short")
    for bad in ({pid.KEY: "x"}, {pid.KEY: {"info": {"required": "yes"}}}, {pid.KEY: {"info": {"id": "short"}}}):
        with pytest.raises(pid.InvalidPaymentIdentifier):
            pid.extract(bad)


def test_ids_and_fingerprints() -> None:
    assert pid.is_valid_id(pid.new_id())
    assert pid.new_id() != pid.new_id()
    assert pid.derived_id("wallet", "key-1") == pid.derived_id("wallet", "key-1")
    assert pid.derived_id("wallet", "key-1") != pid.derived_id("wallet", "key-2")
    assert pid.is_valid_id(pid.derived_id("wallet", "key-1"))
    base = {"tenant": "t", "scheme": "exact", "network": "eip155:1", "amount": "1", "resource": "https://a/x"}
    evm_a = pid.fingerprint(**base, asset="0xAbC", pay_to="0xDeF", method="get")
    evm_b = pid.fingerprint(**base, asset="0xabc", pay_to="0xdef", method="GET")
    assert evm_a == evm_b  # EVM addresses: case is a checksum, not identity
    sol = {**base, "network": "solana:x"}
    assert pid.fingerprint(**sol, asset="AbC", pay_to="DeF") != pid.fingerprint(**sol, asset="abc", pay_to="def")
    assert pid.fingerprint(**base, asset="0xabc", pay_to="0xdef", method="POST") != evm_b
    assert pid.fingerprint(**{**base, "amount": "2"}, asset="0xabc", pay_to="0xdef", method="GET") != evm_b
