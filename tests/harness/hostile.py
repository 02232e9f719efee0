"""Hostile values for fuzzing: NUL bytes, huge strings, wrong JSON types, deep nesting, odd numbers and amounts.

Nesting here is 200 levels (over the 64-level limit, far below what could crash an in-process decoder); the
100,000-level documents are only sent to servers in subprocesses (tests/x402/test_hostile_json.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

DEEP = 200

HOSTILE_STRINGS: list[str] = [
    "\x00",
    "abc\x00def",
    "%00",
    "",
    " ",
    "A" * 200_000,
    "\u202e\ufeff💥" * 1000,
    "'; DROP TABLE tenants; --",
    "../../../../etc/passwd",
    "010000",
    "-1",
    "1e309",
    "NaN",
    "0x" + "f" * 200,
    "{{7*7}}",
]
HOSTILE_JSON: list[Any] = [
    *HOSTILE_STRINGS,
    None,
    True,
    0,
    -1,
    2**64,
    -(2**63) - 1,
    10**400,
    1.5,
    -1e308,
    [],
    {},
    [None] * 10_000,
    {"\x00": "\x00"},
    {f"k{i}": i for i in range(2_000)},
]


def deep_array() -> bytes:
    """An array nested DEEP levels."""
    return b"[" * DEEP + b"]" * DEEP


def deep_object() -> bytes:
    """An object nested DEEP levels."""
    return b'{"a":' * DEEP + b"1" + b"}" * DEEP


HOSTILE_BODIES: list[bytes] = [
    deep_array(),
    deep_object(),
    b"",
    b"{",
    b"\xff\xfe\x00",
    b'{"a":"\\u0000"}',
    b'"\\ud800"',
    b"[" + b"1," * 100_000 + b"1]",
    b"null",
    b"1e999999",
]


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``doc`` (containers and scalars), the root excluded."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*path, k)
            yield from leaves(v, (*path, k))
    elif isinstance(doc, list) and doc:
        yield (*path, 0)
        yield from leaves(doc[0], (*path, 0))


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``doc`` with the value at ``path`` replaced."""
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def json_bytes(value: Any) -> bytes:
    """Compact-enough JSON with every non-ASCII character escaped (NULs and surrogates as ``\\u`` escapes)."""
    return json.dumps(value, ensure_ascii=True).encode()  # ensure_ascii: NULs and lone surrogates as \\u escapes
