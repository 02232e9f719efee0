"""Host names of registry URLs: IDNA (punycode) labels, IPv4/IPv6 literals, ports; nothing else.

yarl accepts almost any text as a host (``exa mple.com``, ``a..b``, ``ex<ample.com``) and silently drops tabs and
newlines, so a stored URL could differ from the one probed. This module is the strict check.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

import idna

MAX_HOST: Final = 253
_LABEL: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NUMERIC: Final = re.compile(r"^[0-9.]+$")


def has_bad_chars(value: str) -> bool:
    """True when ``value`` holds whitespace or control characters (never valid anywhere in a URL)."""
    return any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


def host_problem(raw_host: str) -> str | None:
    """Why ``raw_host`` (yarl's ``raw_host``: punycode, brackets removed) is not a valid host; None when it is."""
    if not raw_host:
        return "the URL has no host"
    if ":" in raw_host:
        try:
            ipaddress.IPv6Address(raw_host)
        except ValueError:
            return f"{raw_host!r} is not a valid IPv6 address"
        return None
    if _NUMERIC.fullmatch(raw_host):
        try:
            ipaddress.IPv4Address(raw_host)
        except ValueError:
            return f"{raw_host!r} is not a valid IPv4 address"
        return None
    name = raw_host.lower().removesuffix(".")
    if not name or len(name) > MAX_HOST:
        return f"host names are 1-{MAX_HOST} characters"
    labels = name.split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            return f"{raw_host!r} is not a valid host name (labels are 1-63 letters, digits or inner hyphens)"
    if labels[-1].isdigit():
        return f"{raw_host!r} is not a valid host name (numeric top-level label)"
    if any(label.startswith("xn--") for label in labels):
        try:
            idna.decode(name)
        except UnicodeError:  # idna.IDNAError and bad punycode alike
            return f"{raw_host!r} is not a valid internationalised host name"
    return None
