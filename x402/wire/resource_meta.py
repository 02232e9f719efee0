"""``resource.serviceName`` / ``tags`` / ``iconUrl`` limits (architecture.md §2.2, x402-spec §12.1): soft-dropped.

Clients echo ``resource`` back, so an invalid value is dropped (never an error): ``serviceName`` is 1-32 printable
ASCII characters, ``tags`` at most 5 non-empty strings of at most 32 characters (invalid entries dropped, duplicates
removed, extra entries cut), ``iconUrl`` an http(s) URL of at most 2048 characters without an IP literal,
``localhost`` or user info.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

MAX_SERVICE_NAME: Final = 32
MAX_TAGS: Final = 5
MAX_TAG: Final = 32
MAX_ICON_URL: Final = 2048


def service_name(value: object) -> str | None:
    """``value`` when it is 1-32 printable ASCII characters, else None."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SERVICE_NAME:
        return None
    return value if all(0x20 <= ord(ch) <= 0x7E for ch in value) else None


def tags(value: object) -> list[str]:
    """The valid, distinct tags of ``value`` (the first five)."""
    if not isinstance(value, list):
        return []
    good = [t for t in value if isinstance(t, str) and 0 < len(t) <= MAX_TAG and t.isprintable()]
    return list(dict.fromkeys(good))[:MAX_TAGS]


def icon_url(value: object) -> str | None:
    """``value`` when it is an acceptable icon URL, else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_ICON_URL:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return value
    return None
