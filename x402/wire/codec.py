"""Header codecs: standard base64 of UTF-8 JSON, strict like the TS SDK (no URL-safe alphabet, no whitespace)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final, TypeVar

import msgspec

from x402.errors import InvalidPaymentHeader
from x402.wire import jsonlimits
from x402.wire.models import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequired,
    SettleResponse,
    encode_json,
    peek_x402_version,
)

T = TypeVar("T")

PAYMENT_REQUIRED: Final = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE: Final = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE: Final = "PAYMENT-RESPONSE"
X_PAYMENT: Final = "X-PAYMENT"
X_PAYMENT_RESPONSE: Final = "X-PAYMENT-RESPONSE"
EXTENSION_RESPONSES: Final = "EXTENSION-RESPONSES"

MAX_HEADER_BYTES: Final = 16 * 1024

_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def encode_header(obj: msgspec.Struct) -> str:
    """Standard base64 of the compact JSON of a wire struct (the value of any x402 header)."""
    return base64.b64encode(encode_json(obj)).decode("ascii")


def decode_base64(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> bytes:
    """The bytes of a standard-base64 header value; raises ``header_too_large`` or ``invalid_base64``."""
    if not isinstance(value, str):
        raise InvalidPaymentHeader("header value must be a string", code="invalid_base64")
    if len(value) > max_bytes:
        raise InvalidPaymentHeader(f"header longer than {max_bytes} bytes", code="header_too_large")
    if not value:
        raise InvalidPaymentHeader("empty header value", code="invalid_base64")
    if len(value) % 4 or _BASE64.fullmatch(value) is None:
        raise InvalidPaymentHeader("not standard padded base64", code="invalid_base64")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error as exc:
        raise InvalidPaymentHeader(f"not standard padded base64: {exc}", code="invalid_base64") from None


def _decode(raw: bytes, type_: type[T]) -> T:
    # bounded: a header is attacker-controlled, and an upstream's PAYMENT-REQUIRED is too
    return jsonlimits.decode(raw, type_, error=InvalidPaymentHeader)


def _versioned(value: str, max_bytes: int, want: int | None = None) -> tuple[bytes, int]:
    raw = decode_base64(value, max_bytes=max_bytes)
    version = peek_x402_version(raw, error=InvalidPaymentHeader)
    if want is not None and version != want:
        raise InvalidPaymentHeader(f"expected x402Version {want}, got {version}", code="invalid_x402_version")
    return raw, version


def decode_payment_signature(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> PaymentPayload:
    """Decode a v2 ``PAYMENT-SIGNATURE`` header."""
    raw, _ = _versioned(value, max_bytes, 2)
    return _decode(raw, PaymentPayload)


def decode_x_payment(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> PaymentPayloadV1:
    """Decode a v1 ``X-PAYMENT`` header."""
    raw, _ = _versioned(value, max_bytes, 1)
    return _decode(raw, PaymentPayloadV1)


def decode_payment_payload(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> PaymentPayload | PaymentPayloadV1:
    """Decode a payment header of either version, dispatching on its ``x402Version``."""
    raw, version = _versioned(value, max_bytes)
    if version == 2:
        return _decode(raw, PaymentPayload)
    return _decode(raw, PaymentPayloadV1)


def decode_payment_required(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> PaymentRequired:
    """Decode a v2 ``PAYMENT-REQUIRED`` header."""
    raw, _ = _versioned(value, max_bytes, 2)
    return _decode(raw, PaymentRequired)


def decode_payment_response(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> SettleResponse:
    """Decode a ``PAYMENT-RESPONSE`` / ``X-PAYMENT-RESPONSE`` header."""
    return _decode(decode_base64(value, max_bytes=max_bytes), SettleResponse)


def decode_extension_responses(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """Decode an ``EXTENSION-RESPONSES`` header (a JSON object keyed by extension)."""
    return _decode(decode_base64(value, max_bytes=max_bytes), dict[str, Any])
