"""Importing a Solana wallet key goes through the one Solana key parser (``chains.solana.adapter.parse_keypair``)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from solders.keypair import Keypair

from wallets import keys
from x402.errors import ValidationFailed


@pytest.mark.parametrize(
    "form",
    [
        str,  # base58 of the 64-byte keypair
        lambda kp: json.dumps(list(bytes(kp))),  # solana-keygen JSON file
        lambda kp: json.dumps(list(bytes(kp)[:32])),  # the 32-byte seed as JSON
    ],
)
def test_import_svm_key_forms(form: Callable[[Keypair], str]) -> None:
    kp = Keypair()
    got = keys.imported("svm", form(kp))
    assert got.address == str(kp.pubkey())
    assert Keypair.from_bytes(got.secret).pubkey() == kp.pubkey()


def test_import_svm_key_refused_without_echo() -> None:
    bad = "not-a-key-" + "x" * 60
    with pytest.raises(ValidationFailed) as info:
        keys.imported("svm", bad)
    assert info.value.code == "invalid_key"
    assert bad not in str(info.value.detail)
