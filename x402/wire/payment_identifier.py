"""The ``payment-identifier`` extension (architecture.md §12.3): a client-chosen id that makes a purchase idempotent.

The server declares ``extensions["payment-identifier"] = {info: {required}, schema}`` in its 402; the client echoes
it with ``info.id`` (16-128 chars of ``[A-Za-z0-9_-]``). Same id + same fingerprint gets the cached answer, same id
+ another fingerprint is a 409, a required id that is missing a 400.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from x402.errors import BadRequest, Conflict

KEY: Final = "payment-identifier"
MIN_LENGTH: Final = 16
MAX_LENGTH: Final = 128
_ID_OK: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
#: The JSON Schema of ``info`` sent with every declaration (the official one, draft 2020-12).
SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "required": {"type": "boolean"},
        "id": {"type": "string", "minLength": MIN_LENGTH, "maxLength": MAX_LENGTH, "pattern": "^[a-zA-Z0-9_-]+$"},
    },
    "required": ["required"],
}


class InvalidPaymentIdentifier(BadRequest):
    code = "invalid_payment_identifier"
    title = "Invalid payment identifier"


class PaymentIdentifierRequired(BadRequest):
    code = "payment_identifier_required"
    title = "Payment identifier required"


class PaymentIdentifierConflict(Conflict):
    code = "payment_identifier_conflict"
    title = "Payment identifier reused"


#: Problem codes of this extension, by code (a remote facilitator's answer is turned back into the same error).
ERRORS: Final = {e.code: e for e in (InvalidPaymentIdentifier, PaymentIdentifierRequired, PaymentIdentifierConflict)}


def declaration(required: bool) -> dict[str, Any]:
    """The server's declaration for ``PaymentRequired.extensions``."""
    return {"info": {"required": bool(required)}, "schema": SCHEMA}


def declared(extensions: Mapping[str, Any] | None) -> bool:
    """True when a 402's extensions declare payment-identifier (the client should then send an id)."""
    return bool(extensions) and isinstance(extensions.get(KEY), Mapping)  # type: ignore[union-attr]


def is_valid_id(value: object) -> bool:
    """True for 16-128 characters of ``[A-Za-z0-9_-]``."""
    return isinstance(value, str) and _ID_OK.fullmatch(value) is not None


def new_id() -> str:
    """A fresh id: ``pay_`` and 32 random hex digits."""
    return "pay_" + uuid.uuid4().hex


def derived_id(*parts: str) -> str:
    """A stable id for a purchase named by ``parts`` (e.g. wallet id and Idempotency-Key): a retry reuses it."""
    return "pay_" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def extract(extensions: object) -> tuple[str | None, bool]:
    """``(id, required)`` from a payload's ``extensions``; raises InvalidPaymentIdentifier for a malformed entry."""
    if not isinstance(extensions, Mapping):
        return None, False
    entry = extensions.get(KEY)
    if entry is None:
        return None, False
    info = entry.get("info") if isinstance(entry, Mapping) else None
    if not isinstance(info, Mapping):
        raise InvalidPaymentIdentifier(f'extensions["{KEY}"] must be an object with an "info" object')
    required = info.get("required", False)
    if not isinstance(required, bool):
        raise InvalidPaymentIdentifier(f'extensions["{KEY}"].info.required must be a boolean')
    pid = info.get("id")
    if pid is None:
        return None, required
    if not is_valid_id(pid):
        raise InvalidPaymentIdentifier(
            f'extensions["{KEY}"].info.id must be {MIN_LENGTH}-{MAX_LENGTH} characters of A-Z, a-z, 0-9, "_" and "-"'
        )
    return str(pid), required


def with_id(extensions: Mapping[str, Any] | None, pid: str) -> dict[str, Any] | None:
    """The challenge's extensions with ``info.id`` set when the server declared the extension (else unchanged)."""
    if not extensions or not isinstance(extensions.get(KEY), Mapping):
        return dict(extensions) if extensions else None
    if not is_valid_id(pid):
        raise ValueError(f"payment identifier {pid!r} is not 16-128 characters of [A-Za-z0-9_-]")
    entry = dict(extensions[KEY])
    info = dict(entry.get("info") or {})
    info.setdefault("required", False)
    info["id"] = pid
    entry["info"] = info
    return {**extensions, KEY: entry}


def fingerprint(
    *, tenant: str, scheme: str, network: str, asset: str, amount: str, pay_to: str, resource: str, method: str = ""
) -> bytes:
    """What one id may stand for: the same purchase (price, payee, resource) of the same tenant."""
    doc = [tenant, scheme, network, _addr(asset), amount, _addr(pay_to), method.upper(), resource]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).digest()


def _addr(value: str) -> str:
    # EVM addresses are case-insensitive (checksums vary); base58 Solana addresses are not
    return value.lower() if value.startswith(("0x", "0X")) else value
