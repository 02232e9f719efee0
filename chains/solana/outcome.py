"""The outcome check of Solana ``exact``: which ``TransferChecked`` instructions a transaction performs, at the top
level and inside CPIs (inner instructions of a simulation or of the confirmed transaction), and the one that pays.

Inner instructions come in the three shapes an RPC node answers with: compiled (``programIdIndex`` + account
indexes + base58 data), partially decoded (program and account addresses) and parsed (``jsonParsed`` token
instructions, ``type: "transferChecked"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from chains.solana.payer import TOKEN_PROGRAMS, TRANSFER_CHECKED

_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One ``TransferChecked``: token program, accounts, amount and decimals (``inner``: performed by a CPI)."""

    program: Pubkey
    source: Pubkey
    mint: Pubkey
    dest: Pubkey
    authority: Pubkey
    amount: int
    decimals: int | None = None
    inner: bool = False


def b58decode(text: str) -> bytes:
    """Base58 (Bitcoin alphabet) to bytes; ValueError on a foreign character."""
    num = 0
    for ch in text:
        idx = _B58.find(ch)
        if idx < 0:
            raise ValueError(f"not base58: {ch!r}")
        num = num * 58 + idx
    body = num.to_bytes((num.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def decode_transfer(program: Pubkey, accounts: Sequence[Pubkey], data: bytes, *, inner: bool) -> Transfer | None:
    """A ``TransferChecked`` of SPL Token / Token-2022 from its program, account addresses and data, else None."""
    if program not in TOKEN_PROGRAMS or len(data) != 10 or data[0] != TRANSFER_CHECKED or len(accounts) < 4:
        return None
    return Transfer(
        program,
        accounts[0],
        accounts[1],
        accounts[2],
        accounts[3],
        int.from_bytes(data[1:9], "little"),
        data[9],
        inner,
    )


def top_level_transfers(keys: Sequence[Pubkey], ixs: Iterable[Any]) -> list[Transfer]:
    """Every top-level ``TransferChecked`` of a compiled message (``keys``: static + lookup-table accounts)."""
    out: list[Transfer] = []
    for ix in ixs:
        t = decode_transfer(
            keys[ix.program_id_index], [keys[a] for a in bytes(ix.accounts)], bytes(ix.data), inner=False
        )
        if t is not None:
            out.append(t)
    return out


def inner_transfers(groups: Iterable[Any] | None, keys: Sequence[Pubkey]) -> list[Transfer]:
    """Every ``TransferChecked`` among RPC inner instructions (simulation or confirmed transaction meta)."""
    out: list[Transfer] = []
    for group in groups or ():
        for ix in group.instructions:
            t = _inner_transfer(ix, keys)
            if t is not None:
                out.append(t)
    return out


def _inner_transfer(ix: Any, keys: Sequence[Pubkey]) -> Transfer | None:
    parsed = getattr(ix, "parsed", None)
    if isinstance(parsed, dict):
        return _parsed_transfer(ix.program_id, parsed)
    try:
        data = b58decode(ix.data)
        if hasattr(ix, "program_id_index"):
            idx = list(ix.accounts)
            if ix.program_id_index >= len(keys) or any(a >= len(keys) for a in idx):
                return None
            return decode_transfer(keys[ix.program_id_index], [keys[a] for a in idx], data, inner=True)
        return decode_transfer(ix.program_id, list(ix.accounts), data, inner=True)
    except (ValueError, AttributeError, TypeError):
        return None


def _parsed_transfer(program: Pubkey, parsed: dict[str, Any]) -> Transfer | None:
    info = parsed.get("info")
    if program not in TOKEN_PROGRAMS or parsed.get("type") != "transferChecked" or not isinstance(info, dict):
        return None
    raw_amount = info.get("tokenAmount")
    amount: dict[str, Any] = raw_amount if isinstance(raw_amount, dict) else {}
    try:
        return Transfer(
            program,
            Pubkey.from_string(str(info["source"])),
            Pubkey.from_string(str(info["mint"])),
            Pubkey.from_string(str(info["destination"])),
            Pubkey.from_string(str(info.get("authority") or info.get("multisigAuthority"))),
            int(str(amount.get("amount", info.get("amount", "")))),
            int(amount["decimals"]) if "decimals" in amount else None,
            True,
        )
    except (KeyError, ValueError, TypeError):
        return None


def payee_accounts(asset: str, pay_to: str) -> dict[Pubkey, Pubkey]:
    """payTo's associated token account for ``asset`` under each token program -> that program."""
    mint, owner = Pubkey.from_string(asset), Pubkey.from_string(pay_to)
    return {get_associated_token_address(owner, mint, p): p for p in TOKEN_PROGRAMS}


def matching(transfers: Iterable[Transfer], asset: str, pay_to: str, amount: int) -> list[Transfer]:
    """The transfers that pay the requirement: the mint, into payTo's ATA of that token program, at least ``amount``.

    Raises ValueError when ``asset`` or ``pay_to`` is not a Solana address.
    """
    atas = payee_accounts(asset, pay_to)
    mint = Pubkey.from_string(asset)
    return [t for t in transfers if t.mint == mint and atas.get(t.dest) == t.program and t.amount >= amount]


__all__ = [
    "Transfer",
    "b58decode",
    "decode_transfer",
    "inner_transfers",
    "matching",
    "payee_accounts",
    "top_level_transfers",
]
