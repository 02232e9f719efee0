"""Cheap unique ids for hot paths: a random per-process prefix plus a counter (no syscall per id).

``secrets``/``uuid4`` read the OS random source on every call, which showed up in /verify profiles; these ids need
to be unique, not secret.
"""

from __future__ import annotations

import itertools
import os
import uuid

_PREFIX = int.from_bytes(os.urandom(8), "big")
_COUNTER = itertools.count(1)
_HEX_PREFIX = os.urandom(4).hex()


def fast_uuid() -> uuid.UUID:
    """A version-4-shaped UUID unique across processes (random 64-bit process prefix, 62-bit counter)."""
    n = (_PREFIX << 64) | (next(_COUNTER) & ((1 << 62) - 1))
    # set the RFC 4122 version (4) and variant bits so it is a well-formed v4 UUID
    n = (n & ~(0xF << 76)) | (4 << 76)
    n = (n & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=n)


def request_id() -> str:
    """A 16-hex-character request id: 8 random per process, 8 from a counter."""
    return f"{_HEX_PREFIX}{next(_COUNTER) & 0xFFFFFFFF:08x}"
