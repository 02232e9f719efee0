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


_OCTET: Final = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_H16: Final = "[0-9a-fA-F]{1,4}"
_IPV6: Final = "|".join(
    (
        f"({_H16}:){{7}}{_H16}",
        f"({_H16}:){{1,7}}:",
        *(f"({_H16}:){{1,{6 - k}}}(:{_H16}){{1,{k + 1}}}" for k in range(6)),
        f":((:{_H16}){{1,7}}|:)",
    )
)
_AN: Final = "[a-zA-Z0-9]"


def _label(first: str) -> str:
    """A DNS label of 1-63 letters, digits and inner hyphens, without ``--`` at positions 3-4."""
    # so never ``xn--``: IDNA validity is not a regular language; such URLs are accepted but not documented
    return f"{first}(({_AN}|-)?{_AN}|({_AN}|-){_AN}(({_AN}|-){{0,59}}{_AN})?|({_AN}|-)-{_AN}(({_AN}|-){{0,58}}{_AN})?)?"


_DNS_LABEL: Final = _label(_AN)
#: A top-level label that starts with a letter is never all digits.
_TOP_LABEL: Final = _label("[a-zA-Z]")
_PORT: Final = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
#: The URLs the OpenAPI document promises ``check_http_url`` accepts: http(s), a host ``host_problem`` passes (a DNS
#: name of up to four labels, a dotted-quad IPv4 or a bracketed IPv6 address), an optional port 1-65535, and a
#: path, query and fragment of printable URL characters. It is no looser than the server, so schema-valid is accepted.
URL_PATTERN: Final = (
    f"^https?://((({_DNS_LABEL})\\.){{0,3}}{_TOP_LABEL}\\.?|({_OCTET}\\.){{3}}{_OCTET}|\\[({_IPV6})\\])"
    f"(:{_PORT})?([/?#][A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*)?$"
)
