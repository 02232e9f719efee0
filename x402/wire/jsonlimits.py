"""Bounded JSON: the one way to parse untrusted bytes (size and nesting depth are checked before any decoder runs).

msgspec and the stdlib decoders recurse once per nesting level and rely on the interpreter's recursion limit to
stop, but ``eth_account`` (through ``py_ecc``) raises that limit to 100000, so a ~100 KB document of brackets
overflows the C stack and kills the process. The depth check here is a flat scan: strings are cut out with one
regular expression, the brackets that remain become +1/-1 and ``itertools.accumulate`` gives the running depth,
all in C loops, with no recursion and no Python loop per byte.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any, Final, TypeVar

import msgspec

from x402.errors import BadRequest

T = TypeVar("T")

#: Deepest nesting accepted anywhere (x402 documents are < 10 levels deep; JSON-RPC answers < 10).
MAX_DEPTH: Final = 64

_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: a ``\u0000`` escape: preceded by an even number of backslashes (pairs are escaped backslashes)
_NUL_ESCAPE: Final = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_SIGNS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_ANY: Final = msgspec.json.Decoder()
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def nesting_depth(data: bytes | str) -> int:
    """How deep arrays and objects nest in a JSON text (0 for a scalar); exact for every valid prefix."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    # a bracket inside a string is not structure: drop the strings, then keep only the brackets
    signs = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS).translate(_SIGNS)
    return max(accumulate(array("b", signs)), default=0)


def check_json(
    data: bytes | bytearray | memoryview | str,
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = None,
    error: type[BadRequest] = BadRequest,
) -> None:
    """Raise ``error`` (``json_too_large`` / ``json_too_deep`` / ``nul_character``) unless ``data`` is within bounds."""
    # NUL: valid JSON, but Postgres refuses it in text and jsonb, so it would surface later as a 500
    if not isinstance(data, bytes | str):
        data = bytes(data)  # bytearray, memoryview, msgspec.Raw
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"JSON document larger than {max_bytes} bytes", code="json_too_large")
    opens = data.count(b"[") + data.count(b"{") if isinstance(data, bytes) else data.count("[") + data.count("{")
    if opens > max_depth and nesting_depth(data) > max_depth:  # few brackets (the usual case): no scan at all
        raise error(f"JSON nested deeper than {max_depth} levels", code="json_too_deep")
    nul = "\\u0000" in data if isinstance(data, str) else b"\\u0000" in data
    if nul and _NUL_ESCAPE.search(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data):
        raise error("a JSON string contains a NUL character (\\u0000)", code="nul_character")


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    dec = _DECODERS.get(type_)
    if dec is None:
        dec = _DECODERS[type_] = msgspec.json.Decoder(type_)
    return dec


def loads(
    data: bytes | bytearray | memoryview | str,
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = None,
    error: type[BadRequest] = BadRequest,
) -> Any:
    """Parse any JSON value within the bounds; raises ``error`` with ``json_too_*`` or ``invalid_json``."""
    check_json(data, max_depth=max_depth, max_bytes=max_bytes, error=error)
    try:
        return _ANY.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise error(f"invalid JSON: {exc}", code="invalid_json") from None


def decode(
    data: bytes | str,
    type_: type[T],
    *,
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = None,
    error: type[BadRequest] = BadRequest,
) -> T:
    """Parse JSON into ``type_`` within the bounds; ``error`` codes ``json_too_*``, ``invalid_json``/``_payload``."""
    check_json(data, max_depth=max_depth, max_bytes=max_bytes, error=error)
    try:
        result: T = _decoder(type_).decode(data)
    except msgspec.ValidationError as exc:
        raise error(str(exc), code="invalid_payload") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise error(f"invalid JSON: {exc}", code="invalid_json") from None
    return result
