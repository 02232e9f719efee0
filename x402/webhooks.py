"""Webhook signatures, for the service that signs and for receivers that verify (no service imports).

Every delivery carries ``X402-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``; while a
rotated secret's overlap window runs, the header carries one ``v1=`` per valid secret (newest first). A receiver
accepts a delivery when any ``v1`` matches one of its secrets and ``t`` is within the tolerance (default 300 s) of
its clock, which stops a captured delivery being replayed later. ``X402-Event-Id`` is the event's id: the same on
every retry of an event, so receivers drop duplicates (delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Final

#: The envelope's ``apiVersion``; bump it when a payload changes shape incompatibly.
API_VERSION: Final = "2026-12-01"
SIGNATURE_HEADER: Final = "X402-Signature"
EVENT_ID_HEADER: Final = "X402-Event-Id"
EVENT_TYPE_HEADER: Final = "X402-Event-Type"
#: Seconds a signature's timestamp may differ from the receiver's clock.
DEFAULT_TOLERANCE: Final = 300


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets: Iterable[bytes], body: bytes, timestamp: int | None = None) -> str:
    """The ``X402-Signature`` value for ``body``: one ``v1`` per secret (during a rotation's overlap, two)."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={_mac(s, t, body)}" for s in secrets)])


def verify(
    secret: str | bytes,
    body: bytes,
    header: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance`` seconds.

    ``body`` is the raw request body, byte for byte, as received (never re-serialised JSON).
    """
    key = secret.encode() if isinstance(secret, str) else secret
    t: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                t = int(value)
            except ValueError:
                return False
        elif name == "v1":
            macs.append(value)
    if t is None or not macs:
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = _mac(key, t, body)
    # compare against every v1 without stopping early, so timing says nothing about which one matched
    ok = False
    for mac in macs:
        ok |= hmac.compare_digest(expected, mac)
    return ok
