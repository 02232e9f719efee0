"""x402 wire types (v1 and v2) as msgspec Structs, plus JSON helpers and v1 -> v2 normalisation.

Conventions: camelCase keys, unknown keys ignored (forward compatible), optional fields are ``UNSET`` and
omitted on encode, an explicit ``null`` in an optional field is rejected on decode, amounts stay strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeGuard, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from x402.errors import BadRequest
from x402.wire import jsonlimits, resource_meta
from x402.wire.networks import to_caip2

T = TypeVar("T")

MAX_AMOUNT: Final = 2**256


class WireStruct(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of every wire struct: keyword-only, camelCase, defaults omitted on encode.

    Subclasses repeat ``kw_only=True`` so mypy's dataclass_transform sees it (msgspec inherits it anyway).
    """


class ResourceInfo(WireStruct, kw_only=True):
    """The paid resource (v2 top-level ``resource``)."""

    url: str
    description: str | UnsetType = UNSET
    mime_type: str | UnsetType = UNSET
    # typed loosely on decode so a value of the wrong type is dropped too; after __post_init__ they are
    # ``str | UNSET``, ``list[str] | UNSET`` and ``str | UNSET``
    service_name: Any = UNSET
    tags: Any = UNSET
    icon_url: Any = UNSET

    def __post_init__(self) -> None:
        """Soft-drop an invalid ``serviceName``, ``tags`` or ``iconUrl`` (x402-spec §12.1); never a decode error."""
        if self.service_name is not UNSET and resource_meta.service_name(self.service_name) is None:
            self.service_name = UNSET
        if self.tags is not UNSET:
            kept = resource_meta.tags(self.tags)
            self.tags = kept if kept else UNSET
        if self.icon_url is not UNSET and resource_meta.icon_url(self.icon_url) is None:
            self.icon_url = UNSET


# ---------------------------------------------------------------------------------------------- v1


class PaymentRequirementsV1(WireStruct, kw_only=True):
    """One v1 ``accepts`` entry."""

    scheme: str
    network: str
    max_amount_required: str
    resource: str
    description: str
    mime_type: str
    pay_to: str
    max_timeout_seconds: int
    asset: str
    output_schema: dict[str, Any] | UnsetType = UNSET
    extra: dict[str, Any] | UnsetType = UNSET


class PaymentRequiredV1(WireStruct, kw_only=True, omit_defaults=False):
    """The v1 402 JSON body."""

    x402_version: Literal[1] = 1
    error: str
    accepts: list[PaymentRequirementsV1]


class PaymentPayloadV1(WireStruct, kw_only=True, omit_defaults=False):
    """The v1 ``X-PAYMENT`` payload."""

    x402_version: Literal[1] = 1
    scheme: str
    network: str
    payload: dict[str, Any]


# ---------------------------------------------------------------------------------------------- v2


class PaymentRequirements(WireStruct, kw_only=True):
    """One v2 ``accepts`` entry (also the shape every verifier works on, see ``normalize``)."""

    scheme: str
    network: str
    amount: str
    asset: str
    pay_to: str
    max_timeout_seconds: int
    extra: dict[str, Any] = {}


class PaymentRequired(WireStruct, kw_only=True, omit_defaults=False):
    """The v2 ``PAYMENT-REQUIRED`` object."""

    x402_version: Literal[2] = 2
    error: str | UnsetType = UNSET
    resource: ResourceInfo | UnsetType = UNSET
    accepts: list[PaymentRequirements]
    extensions: dict[str, Any] | UnsetType = UNSET


class PaymentPayload(WireStruct, kw_only=True, omit_defaults=False):
    """The v2 ``PAYMENT-SIGNATURE`` payload."""

    x402_version: Literal[2] = 2
    resource: ResourceInfo | UnsetType = UNSET
    accepted: PaymentRequirements
    payload: dict[str, Any]
    extensions: dict[str, Any] | UnsetType = UNSET


# ------------------------------------------------------------------------------- facilitator API


class VerifyResponse(WireStruct, kw_only=True):
    """Body of a ``/verify`` answer."""

    is_valid: bool
    invalid_reason: str | UnsetType = UNSET
    invalid_message: str | UnsetType = UNSET
    payer: str | UnsetType = UNSET
    extensions: dict[str, Any] | UnsetType = UNSET
    extra: dict[str, Any] | UnsetType = UNSET


class SettleResponse(WireStruct, kw_only=True, omit_defaults=False):
    """Body of a ``/settle`` answer and of ``PAYMENT-RESPONSE``; ``transaction``/``network`` always encoded."""

    success: bool
    error_reason: str | UnsetType = UNSET
    error_message: str | UnsetType = UNSET
    payer: str | UnsetType = UNSET
    transaction: str = ""
    network: str
    amount: str | UnsetType = UNSET
    extensions: dict[str, Any] | UnsetType = UNSET
    extra: dict[str, Any] | UnsetType = UNSET


class SupportedKind(WireStruct, kw_only=True):
    """One ``/supported`` kind (v1 kinds carry v1 network names)."""

    x402_version: int
    scheme: str
    network: str
    extra: dict[str, Any] | UnsetType = UNSET


class SupportedResponse(WireStruct, kw_only=True, omit_defaults=False):
    """Body of ``GET /supported``; ``extensions`` and ``signers`` always encoded."""

    kinds: list[SupportedKind]
    extensions: list[str] = []
    signers: dict[str, list[str]] = {}


class VerifyRequest(WireStruct, kw_only=True, omit_defaults=False):
    """Body of ``POST /verify`` (encode only; decode with ``decode_facilitator_request``)."""

    x402_version: int
    payment_payload: PaymentPayload | PaymentPayloadV1
    payment_requirements: PaymentRequirements | PaymentRequirementsV1


class SettleRequest(VerifyRequest, kw_only=True):
    """Body of ``POST /settle`` (same shape as ``VerifyRequest``)."""


@dataclass(frozen=True, slots=True)
class FacilitatorRequest:
    """A decoded ``/verify`` or ``/settle`` body; payload and requirements are of the same version."""

    x402_version: int
    payload: PaymentPayload | PaymentPayloadV1
    requirements: PaymentRequirements | PaymentRequirementsV1

    def to_body(self) -> VerifyRequest:
        """The wire body for this request."""
        return VerifyRequest(
            x402_version=self.x402_version, payment_payload=self.payload, payment_requirements=self.requirements
        )


# -------------------------------------------------------------------------------------- discovery


class DiscoveryItem(WireStruct, kw_only=True):
    """One resource of ``GET /discovery/resources``."""

    resource: str
    type: str
    x402_version: int
    accepts: list[dict[str, Any]]
    last_updated: str
    description: str | UnsetType = UNSET
    mime_type: str | UnsetType = UNSET
    service_name: str | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET
    icon_url: str | UnsetType = UNSET
    extensions: dict[str, Any] | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class Pagination(WireStruct, kw_only=True, omit_defaults=False):
    """Offset pagination of a discovery page."""

    limit: int
    offset: int
    total: int


class DiscoveryPage(WireStruct, kw_only=True, omit_defaults=False):
    """Body of ``GET /discovery/resources``."""

    x402_version: int = 2
    items: list[DiscoveryItem]
    pagination: Pagination


# ----------------------------------------------------------------------------------------- JSON

_ENCODER: Final = msgspec.json.Encoder()
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode_json(obj: Any) -> bytes:
    """Encode a wire struct (or plain JSON value) to compact JSON bytes."""
    return _ENCODER.encode(obj)


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    dec = _DECODERS.get(type_)
    if dec is None:
        dec = _DECODERS[type_] = msgspec.json.Decoder(type_)
    return dec


def decode_json(data: bytes | str, type_: type[T]) -> T:
    """Decode JSON into ``type_`` (bounded); raises BadRequest ``invalid_json``, ``invalid_payload``, ``json_too_*``."""
    return jsonlimits.decode(data, type_)


class _Envelope(msgspec.Struct, rename="camel"):
    x402_version: Any = UNSET
    payment_payload: msgspec.Raw | UnsetType = UNSET
    payment_requirements: msgspec.Raw | UnsetType = UNSET


class _VersionPeek(msgspec.Struct, rename="camel"):
    x402_version: Any = UNSET


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_PEEK_DECODER: Final = msgspec.json.Decoder(_VersionPeek)


def peek_x402_version(data: bytes | str, *, error: type[BadRequest] = BadRequest, path: str = "") -> int:
    """The ``x402Version`` (1 or 2) of the JSON object at ``path``; ``invalid_json``/``_payload``/``_x402_version``."""
    field = f"{path}.x402Version" if path else "x402Version"
    jsonlimits.check_json(data, error=error)
    try:
        version = _PEEK_DECODER.decode(data).x402_version
    except msgspec.ValidationError as exc:
        raise error(f"expected a JSON object: {exc}", code="invalid_payload") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise error(f"invalid JSON: {exc}", code="invalid_json") from None
    if version is UNSET:
        raise error(f"missing {field}", code="invalid_x402_version", field=field)
    if type(version) is not int or version not in (1, 2):
        raise error(f"unsupported {field} {version!r}", code="invalid_x402_version", field=field)
    return version


def _at(exc: msgspec.ValidationError, root: str) -> tuple[str, dict[str, str]]:
    # msgspec says "Object missing required field `scheme` - at `$.accepted`": name the field by its full path
    text = str(exc)
    where = re.search(r" - at `\$([^`]*)`$", text)
    field = root + (where.group(1) if where else "")
    message = text[: where.start()] if where else text
    missing = re.fullmatch(r"Object missing required field `([^`]+)`", message)
    if missing:
        field += "." + missing.group(1)
        return f"missing {field}", {"field": field}
    return f"{field}: {message}", {"field": field}


def decode_facilitator_request(body: bytes | str) -> FacilitatorRequest:
    """Decode a ``/verify`` or ``/settle`` body (v1 or v2 by ``paymentPayload.x402Version``); errors name the field."""
    jsonlimits.check_json(body)
    try:
        env = _ENVELOPE_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"expected a JSON object: {exc}", code="invalid_payload") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}", code="invalid_json") from None
    if isinstance(env.payment_payload, UnsetType):
        raise BadRequest("missing paymentPayload", code="invalid_payload", field="paymentPayload")
    if isinstance(env.payment_requirements, UnsetType):
        raise BadRequest(
            "missing paymentRequirements", code="invalid_payment_requirements", field="paymentRequirements"
        )
    version = peek_x402_version(env.payment_payload, path="paymentPayload")
    if env.x402_version is not UNSET and (type(env.x402_version) is not int or env.x402_version != version):
        raise BadRequest(
            f"x402Version {env.x402_version!r} does not match paymentPayload.x402Version {version}",
            code="invalid_x402_version",
            field="x402Version",
        )
    payload_type: Any = PaymentPayload if version == 2 else PaymentPayloadV1
    requirements_type: Any = PaymentRequirements if version == 2 else PaymentRequirementsV1
    try:
        payload = _decoder(payload_type).decode(env.payment_payload)
    except msgspec.ValidationError as exc:
        detail, extra = _at(exc, "paymentPayload")
        raise BadRequest(detail, code="invalid_payload", **extra) from None
    try:
        requirements = _decoder(requirements_type).decode(env.payment_requirements)
    except msgspec.ValidationError as exc:
        detail, extra = _at(exc, "paymentRequirements")
        raise BadRequest(detail, code="invalid_payment_requirements", **extra) from None
    return FacilitatorRequest(x402_version=version, payload=payload, requirements=requirements)


# ------------------------------------------------------------------------------------- helpers


def is_canonical_uint(value: object) -> TypeGuard[str]:
    """True for the one wire spelling of an unsigned integer: ASCII decimal digits, no leading zero, <= 78 digits."""
    # "010000" and 10000 would be a second encoding of the same authorization: refused
    return (
        isinstance(value, str)
        and 0 < len(value) <= 78
        and value.isascii()
        and value.isdigit()
        and (value[0] != "0" or value == "0")
    )


def parse_amount(value: str, *, error: type[BadRequest] = BadRequest) -> int:
    """Parse an atomic amount: canonical decimal digits only (no leading zero), below 2**256; ``invalid_amount``."""
    if not is_canonical_uint(value):
        raise error(
            f"invalid amount {str(value)[:80]!r}: expected a decimal string of digits without leading zeros",
            code="invalid_amount",
        )
    amount = int(value)
    if amount >= MAX_AMOUNT:
        raise error(f"invalid amount {value!r}: not below 2**256", code="invalid_amount")
    return amount


def requirements_to_v2(req: PaymentRequirementsV1) -> PaymentRequirements:
    """The v2 shape of a v1 requirement (CAIP-2 network, ``amount``); raises ``invalid_network``."""
    return PaymentRequirements(
        scheme=req.scheme,
        network=to_caip2(req.network),
        amount=req.max_amount_required,
        asset=req.asset,
        pay_to=req.pay_to,
        max_timeout_seconds=req.max_timeout_seconds,
        extra={} if isinstance(req.extra, UnsetType) else dict(req.extra),
    )


def resource_from_v1(req: PaymentRequirementsV1) -> ResourceInfo:
    """The v2 ``ResourceInfo`` carried inside a v1 requirement."""
    return ResourceInfo(url=req.resource, description=req.description, mime_type=req.mime_type)


def payload_to_v2(payload: PaymentPayloadV1, accepted: PaymentRequirements) -> PaymentPayload:
    """The v2 shape of a v1 payload, given the (v2-shaped) requirement it pays."""
    return PaymentPayload(accepted=accepted, payload=payload.payload)


def normalize(
    payload: PaymentPayload | PaymentPayloadV1, requirements: PaymentRequirements | PaymentRequirementsV1
) -> tuple[PaymentPayload, PaymentRequirements]:
    """Turn a v1 or v2 (payload, requirements) pair into the v2 shapes verifiers work on.

    For v1 the payload's own ``scheme``/``network`` become the ``accepted`` requirement's, so a verifier's
    "accepted matches requirements" check still catches a v1 payload for another scheme or network.
    """
    if isinstance(payload, PaymentPayload) and isinstance(requirements, PaymentRequirements):
        return payload, requirements
    if isinstance(payload, PaymentPayloadV1) and isinstance(requirements, PaymentRequirementsV1):
        req2 = requirements_to_v2(requirements)
        accepted = msgspec.structs.replace(req2, scheme=payload.scheme, network=_caip2_or_raw(payload.network))
        resource = resource_from_v1(requirements)
        return PaymentPayload(resource=resource, accepted=accepted, payload=payload.payload), req2
    raise BadRequest("payload and requirements are of different x402 versions", code="invalid_x402_version")


def resource_url(
    payload: PaymentPayload | PaymentPayloadV1, requirements: PaymentRequirements | PaymentRequirementsV1
) -> str:
    """The paid resource's URL as the payment describes it (v2 ``resource.url``, v1 ``requirements.resource``)."""
    resource = getattr(payload, "resource", None)
    url = getattr(resource, "url", None)
    if isinstance(url, str):
        return url
    v1 = getattr(requirements, "resource", None)
    return v1 if isinstance(v1, str) else ""


def _caip2_or_raw(network: str) -> str:
    try:
        return to_caip2(network)
    except BadRequest:
        return network


__all__ = [
    "MAX_AMOUNT",
    "DiscoveryItem",
    "DiscoveryPage",
    "FacilitatorRequest",
    "Pagination",
    "PaymentPayload",
    "PaymentPayloadV1",
    "PaymentRequired",
    "PaymentRequiredV1",
    "PaymentRequirements",
    "PaymentRequirementsV1",
    "ResourceInfo",
    "SettleRequest",
    "SettleResponse",
    "SupportedKind",
    "SupportedResponse",
    "VerifyRequest",
    "VerifyResponse",
    "WireStruct",
    "decode_facilitator_request",
    "decode_json",
    "encode_json",
    "is_canonical_uint",
    "normalize",
    "parse_amount",
    "payload_to_v2",
    "peek_x402_version",
    "requirements_to_v2",
    "resource_from_v1",
    "resource_url",
]
