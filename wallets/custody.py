"""Key custody: wallet private keys encrypted at rest with AES-256-GCM under a master key with a key id.

The master key comes from ``X402_MASTER_KEY`` or a file (``X402_MASTER_KEY_FILE``); a keyring may hold older
keys too (one per line, newest first) so rotation can re-wrap every wallet key without downtime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from x402.errors import ConfigError, X402Error


class CustodyError(X402Error):
    """A key could not be unwrapped (wrong master key or tampered ciphertext)."""

    status = 500
    code = "key_custody_error"
    title = "Key custody error"


def _decode_key(text: str) -> bytes:
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise ConfigError("a master key must be 32 bytes, as 64 hex characters or base64")
    return raw


def key_id_of(key: bytes) -> str:
    """A public, stable id of a master key (never the key itself)."""
    return hashlib.sha256(b"x402-master-key-id" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Sealed:
    """An encrypted secret and the id of the master key that sealed it."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    @classmethod
    def from_row(cls, row: Any) -> Sealed:
        """From a row with ``key_id``, ``nonce`` and ``ciphertext`` columns."""
        return cls(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))


@dataclass(frozen=True)
class Keyring:
    """The current master key plus older ones still accepted for unwrapping."""

    current: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """One key per line (hex or base64), newest first; blank lines and ``#`` comments ignored."""
        keys = [_decode_key(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if not keys:
            raise ConfigError("the master key file holds no key")
        return cls(keys[0], tuple(keys[1:]))

    @classmethod
    def generate(cls) -> Keyring:
        """A fresh random keyring (for tests and first start-up)."""
        return cls(os.urandom(32))

    @property
    def key_id(self) -> str:
        """Id of the current key."""
        return key_id_of(self.current)

    def _by_id(self, key_id: str) -> bytes:
        for key in (self.current, *self.previous):
            if key_id_of(key) == key_id:
                return key
        raise CustodyError(f"no master key with id {key_id} is configured")

    def seal(self, secret: bytes, *, aad: bytes) -> Sealed:
        """Encrypt under the current key; ``aad`` binds the ciphertext to its owner (e.g. the wallet id)."""
        nonce = secrets.token_bytes(12)
        return Sealed(self.key_id, nonce, AESGCM(self.current).encrypt(nonce, secret, aad))

    def unseal(self, sealed: Sealed, *, aad: bytes) -> bytes:
        """Decrypt with whichever configured key sealed it."""
        try:
            return AESGCM(self._by_id(sealed.key_id)).decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag as exc:
            raise CustodyError("wallet key failed authentication (tampered or wrong key)") from exc

    def rewrap(self, sealed: Sealed, *, aad: bytes) -> Sealed:
        """Re-encrypt under the current key (no-op when it already is)."""
        if sealed.key_id == self.key_id:
            return sealed
        return self.seal(self.unseal(sealed, aad=aad), aad=aad)


def load_keyring(master_key: str | None, master_key_file: str | None) -> Keyring | None:
    """The keyring from settings (env value or file); None when neither is configured."""
    if master_key:
        return Keyring.parse(master_key.replace(",", "\n"))
    if master_key_file:
        try:
            with open(master_key_file) as fh:
                return Keyring.parse(fh.read())
        except OSError as exc:
            raise ConfigError(f"cannot read the master key file: {exc.strerror}") from exc
    return None
