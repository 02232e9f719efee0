"""Address normalisation: EVM addresses compare lower-case, Solana addresses are case-sensitive base58."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from solders.pubkey import Pubkey

Family = Literal["evm", "solana", "other"]

_EVM = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")


def is_evm_address(value: str) -> bool:
    """True for ``0x`` followed by 40 hex digits (any case; checksums are not required)."""
    return bool(_EVM.match(value))


def is_solana_address(value: str) -> bool:
    """True for base58 text that decodes to exactly 32 bytes."""
    if not _BASE58.match(value):
        return False
    try:
        Pubkey.from_string(value)
    except ValueError:
        return False
    return True


def family_of(value: str) -> Family:
    """Which address family a string belongs to."""
    if is_evm_address(value):
        return "evm"
    if is_solana_address(value):
        return "solana"
    return "other"


@lru_cache(maxsize=8192)
def normalize_address(value: str) -> str:
    """The form addresses are stored and compared in: EVM lower-case, everything else stripped only.

    Memoised: every payment normalises the same few payer / payTo / asset addresses several times (risk rules,
    baselines, payer history), and a regex match per call showed up in /verify profiles.
    """
    value = value.strip()
    return value.lower() if is_evm_address(value) else value
