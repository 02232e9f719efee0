"""The bounded JSON decoder: a flat depth scan that agrees with a reference walk, strings and escapes included."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest

from x402.errors import BadRequest, InvalidPaymentHeader
from x402.wire.jsonlimits import MAX_DEPTH, check_json, decode, loads, nesting_depth

TRICKY = ["[", "]", "{", "}", '"', "\\", '\\"', '"[', "\\\\", "\\u0022", "x"]


def _reference_depth(text: str) -> int:
    """Depth by walking characters one by one (the obvious, slow way)."""
    depth = best = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def _random_doc(rng: random.Random, depth: int) -> Any:
    kind = rng.random()
    if depth <= 0 or kind < 0.3:
        return rng.choice([None, True, 1, -2.5, "".join(rng.choices(TRICKY, k=rng.randint(0, 6)))])
    if kind < 0.65:
        return [_random_doc(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {"".join(rng.choices(TRICKY, k=3)) + str(i): _random_doc(rng, depth - 1) for i in range(rng.randint(0, 3))}


def test_depth_matches_a_reference_walk_on_random_documents() -> None:
    rng = random.Random(402)
    for _ in range(600):
        text = json.dumps(_random_doc(rng, rng.randint(0, 90)))
        assert nesting_depth(text) == _reference_depth(text), text
        assert nesting_depth(text.encode()) == _reference_depth(text)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[["', 0),
        ("[]", 1),
        ('{"a":[{"b":"]]]"}]}', 3),
        ('["\\"[[", [[]]]', 3),
        ('["\\\\", [[]]]', 3),  # an escaped backslash ends before the quote: the string closes there
        ("[" * 70, 70),  # truncated documents count too: the decoder would recurse that far before failing
    ],
)
def test_depth_examples(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_the_limit_is_inclusive_and_strings_do_not_count() -> None:
    check_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(BadRequest) as info:
        check_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert info.value.code == "json_too_deep"
    check_json(json.dumps({"s": "[" * 100_000}).encode())
    # 100,000 levels are refused by the scan alone (no decoder is reached)
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b"[" * 100_000):
        with pytest.raises(BadRequest) as info:
            check_json(deep)
        assert info.value.code == "json_too_deep"


def test_size_nul_error_class_and_inputs() -> None:
    with pytest.raises(BadRequest) as info:
        check_json(b"[1,2,3]", max_bytes=6)
    assert info.value.code == "json_too_large"
    with pytest.raises(InvalidPaymentHeader) as hdr:
        check_json(b"[" * 100 + b"]" * 100, error=InvalidPaymentHeader)
    assert hdr.value.code == "json_too_deep"
    for nul in (b'["\\u0000"]', b'{"\\u0000":1}', b'["\\\\\\u0000"]'):
        with pytest.raises(BadRequest) as info:
            loads(nul)
        assert info.value.code == "nul_character", nul
    assert loads(b'["\\\\u0000"]') == ["\\u0000"]  # an escaped backslash, then text
    assert loads(bytearray(b"[1]")) == [1]
    assert loads("[1]") == [1]
    check_json(memoryview(b"[[1]]"))
    assert loads(b'{"a":[1]}') == {"a": [1]}


def test_decode_maps_errors_to_codes() -> None:
    class Point(msgspec.Struct):
        x: int

    assert decode(b'{"x":1}', Point) == Point(1)
    for raw, code in ((b'{"x":"a"}', "invalid_payload"), (b"{", "invalid_json"), (b"\xff", "invalid_json")):
        with pytest.raises(BadRequest) as info:
            decode(raw, Point)
        assert info.value.code == code
