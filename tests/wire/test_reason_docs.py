"""docs/reason-codes.md lists every reason code the wire module defines."""

from __future__ import annotations

from pathlib import Path

from x402.wire import reasons

DOC = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"


def test_every_reason_code_is_documented() -> None:
    text = DOC.read_text()
    missing = [code for code in reasons.DESCRIPTIONS if f"| `{code}` |" not in text]
    assert not missing, f"add these to docs/reason-codes.md: {missing}"


def test_settle_problem_codes_are_documented() -> None:
    from chains.base import SignerOutOfGas

    assert f"| `{SignerOutOfGas.code}` | {SignerOutOfGas.status} |" in DOC.read_text()
