"""API key format: ``x402_<mode>_<prefix>_<secret>``, shown once; only the secret's SHA-256 is stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SCOPES = ("verify", "settle", "wallets", "registry", "admin")
MODES = ("live", "test")
PREFIX_LEN = 10
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_PREFIX_OK = re.compile(r"^[a-z2-7]{8,12}$")
_SECRET_OK = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: the plaintext goes to the caller once, the hash to the database."""

    mode: str
    prefix: str
    secret: str = ""

    @property
    def plaintext(self) -> str:
        """The full key as the client sends it."""
        return f"x402_{self.mode}_{self.prefix}_{self.secret}"

    @property
    def hash(self) -> bytes:
        """What the database stores."""
        return hash_secret(self.secret)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A presented key split into its parts (not yet checked against the database)."""

    mode: str
    prefix: str
    secret: str


def mint(mode: str) -> NewKey:
    """A new random key in ``mode`` (live or test)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    prefix = "".join(secrets.choice(_B32) for _ in range(PREFIX_LEN))
    return NewKey(mode=mode, prefix=prefix, secret=secrets.token_urlsafe(32))


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the secret part (keys are high-entropy, so a slow KDF buys nothing)."""
    return hashlib.sha256(secret.encode()).digest()


def parse(presented: str) -> ParsedKey | None:
    """Split a presented key; None when it is not shaped like one of ours."""
    parts = presented.split("_", 3)
    if len(parts) != 4 or parts[0] != "x402" or parts[1] not in MODES:
        return None
    _, mode, prefix, secret = parts
    if not _PREFIX_OK.match(prefix) or not _SECRET_OK.match(secret):
        return None
    return ParsedKey(mode=mode, prefix=prefix, secret=secret)


def matches(parsed: ParsedKey, stored_hash: bytes) -> bool:
    """Constant-time comparison of the presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(parsed.secret), stored_hash)


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """Validated, de-duplicated scopes in canonical order."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {list(SCOPES)}")
    return [s for s in SCOPES if s in scopes]
