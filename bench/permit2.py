"""Permit2 signature check: our hand-rolled digest + coincurve recovery vs eth-account's generic EIP-712 path.

The local part of verifying an ``upto`` / ``exact``-by-Permit2 payment (parse, Permit2 witness digest, recover the
payer); the RPC round (allowance, balance, nonce, simulation) is the same for both and not measured. Both sides
run in this process, alternating rounds; each keeps its best. usage: .venv/bin/python bench/permit2.py [--n 2000]
[--rounds 3] [--write-docs]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chains.evm import permit2 as p2  # noqa: E402

CHAIN_ID = 8453
DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def payloads(n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """n signed upto payloads with their typed data (payer keys, nonces and amounts all differ)."""
    out = []
    for i in range(n):
        key = "0x" + secrets.token_hex(32)
        acct = Account.from_key(key)
        message: dict[str, Any] = {
            "permitted": {"token": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "amount": 1_000 + i},
            "spender": p2.UPTO_PROXY_ADDRESS,
            "nonce": secrets.randbits(256),
            "deadline": 2_000_000_000,
            "witness": {
                "to": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                "facilitator": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "validAfter": 0,
            },
        }
        typed = {
            "types": {"EIP712Domain": DOMAIN, **p2.TYPES_UPTO},
            "primaryType": "PermitWitnessTransferFrom",
            "domain": {"name": "Permit2", "chainId": CHAIN_ID, "verifyingContract": p2.PERMIT2_ADDRESS},
            "message": message,
        }
        sig = "0x" + bytes(Account.sign_typed_data(key, full_message=typed).signature).hex()
        auth = {
            "from": acct.address,
            "permitted": {"token": message["permitted"]["token"], "amount": str(message["permitted"]["amount"])},
            "spender": message["spender"],
            "nonce": str(message["nonce"]),
            "deadline": str(message["deadline"]),
            "witness": {**message["witness"], "validAfter": "0"},
        }
        out.append(({"signature": sig, "permit2Authorization": auth}, typed))
    return out


def ours(items: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    for payload, _ in items:
        assert p2.parse_permit2(payload).recovers_to_payer(CHAIN_ID)


def generic(items: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    for payload, typed in items:
        signable = encode_typed_data(full_message=typed)
        who = Account.recover_message(signable, signature=payload["signature"])
        assert who == payload["permit2Authorization"]["from"]


def timed(fn: Callable[[Any], None], items: Any, into: list[float]) -> None:
    start = time.perf_counter()
    fn(items)
    into.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    items = payloads(args.n)
    a: list[float] = []
    b: list[float] = []
    for _ in range(args.rounds):
        timed(generic, items, a)
        timed(ours, items, b)
    base, mine = args.n / min(a), args.n / min(b)
    line = (
        f"| Permit2 `upto` signature check, {args.n} payloads, best of {args.rounds} alternating rounds | "
        f"eth-account generic EIP-712 {base:,.0f}/s | ours {mine:,.0f}/s | **{mine / base:.1f}x** |"
    )
    print(line)
    if args.write_docs:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        head = "## Permit2 signature check (bench/permit2.py)"
        block = (
            f"{head}\n\nCommand: `.venv/bin/python bench/permit2.py --write-docs` (shared 2-core box; the ratio is "
            "measured in the same run).\n\n| what | baseline | ours | ratio |\n|---|---|---|---|\n" + line + "\n"
        )
        if head in text:
            start = text.index(head)
            end = text.find("\n## ", start + 1)
            text = text[:start] + block + (text[end:] if end != -1 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + block
        doc.write_text(text)


if __name__ == "__main__":
    main()
