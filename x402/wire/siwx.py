"""The ``sign-in-with-x`` extension (x402-spec §12.3, CAIP-122): the 402 declaration, the header, the messages.

A server declares ``extensions["sign-in-with-x"] = {info: {domain, uri, version, nonce, issuedAt, ...},
supportedChains: [{chainId, type}], schema}``; a client that paid before signs the CAIP-122 message built from
``info`` plus its address and chain, and sends ``SIGN-IN-WITH-X: base64(JSON)`` with the info fields, ``address``,
``chainId``, ``type`` and ``signature``. EVM messages are EIP-4361 (SIWE) text, Solana ones Sign-In-With-Solana
text, each exactly as the reference SDK formats them (the signature covers these bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from x402.errors import InvalidPaymentHeader
from x402.wire import jsonlimits
from x402.wire.codec import decode_base64

KEY: Final = "sign-in-with-x"
HEADER: Final = "SIGN-IN-WITH-X"
MAX_HEADER_BYTES: Final = 8 * 1024

# reason codes of a refused sign-in (the 402's ``error``): the @x402/extensions 2.27 names, plus
# invalid_siwx_header (the header does not decode) and siwx_no_entitlement (valid, but nothing paid)
INVALID_HEADER: Final = "invalid_siwx_header"
DOMAIN_MISMATCH: Final = "invalid_siwx_domain_mismatch"
URI_MISMATCH: Final = "invalid_siwx_uri_mismatch"
INVALID_ISSUED_AT: Final = "invalid_siwx_issued_at"
ISSUED_AT_TOO_OLD: Final = "invalid_siwx_issued_at_too_old"
ISSUED_AT_IN_FUTURE: Final = "invalid_siwx_issued_at_in_future"
INVALID_EXPIRATION: Final = "invalid_siwx_expiration_time"
EXPIRED: Final = "invalid_siwx_expired"
INVALID_NOT_BEFORE: Final = "invalid_siwx_not_before"
NOT_YET_VALID: Final = "invalid_siwx_not_yet_valid"
UNSUPPORTED_CHAIN: Final = "invalid_siwx_unsupported_chain"
INVALID_SIGNATURE: Final = "invalid_siwx_signature"
NONCE_REUSED: Final = "invalid_siwx_nonce"
NO_ENTITLEMENT: Final = "siwx_no_entitlement"
REASONS: Final = (
    INVALID_HEADER,
    DOMAIN_MISMATCH,
    URI_MISMATCH,
    INVALID_ISSUED_AT,
    ISSUED_AT_TOO_OLD,
    ISSUED_AT_IN_FUTURE,
    INVALID_EXPIRATION,
    EXPIRED,
    INVALID_NOT_BEFORE,
    NOT_YET_VALID,
    UNSUPPORTED_CHAIN,
    INVALID_SIGNATURE,
    NONCE_REUSED,
    NO_ENTITLEMENT,
)


class SiwxRefused(Exception):
    """A sign-in that does not grant access; ``code`` is one of REASONS."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class SiwxPayload(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """The decoded ``SIGN-IN-WITH-X`` header (the server's info echoed, plus who signed and how)."""

    domain: str
    address: str
    uri: str
    version: str
    chain_id: str
    type: str
    nonce: str
    issued_at: str
    signature: str
    statement: str | UnsetType = UNSET
    expiration_time: str | UnsetType = UNSET
    not_before: str | UnsetType = UNSET
    request_id: str | UnsetType = UNSET
    resources: list[str] | UnsetType = UNSET
    signature_scheme: str | UnsetType = UNSET


def decode_header(value: str) -> SiwxPayload:
    """The payload of a ``SIGN-IN-WITH-X`` value; raises SiwxRefused(siwx_invalid_header)."""
    try:
        raw = decode_base64(value, max_bytes=MAX_HEADER_BYTES)
        return jsonlimits.decode(raw, SiwxPayload, error=InvalidPaymentHeader)
    except InvalidPaymentHeader as exc:
        raise SiwxRefused(
            INVALID_HEADER, f"SIGN-IN-WITH-X is not base64 JSON of the CAIP-122 fields: {exc.detail}"
        ) from None


def encode_header(payload: SiwxPayload) -> str:
    """The ``SIGN-IN-WITH-X`` value of a payload."""
    import base64

    return base64.b64encode(msgspec.json.encode(payload)).decode("ascii")


def iso(ts: datetime) -> str:
    """ISO-8601 with milliseconds and ``Z``, as JavaScript's ``toISOString`` writes (the reference SDK's form)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.astimezone(UTC).microsecond // 1000:03d}Z"


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp with a zone (``Z`` or an offset); None when it is not one."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def host_of(url: str) -> str:
    """The ``host[:port]`` of a URL as WHATWG ``URL.host`` writes it (default ports left out): the SIWx domain."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or (parts.scheme, port) in (("http", 80), ("https", 443)):
        return host
    return f"{host}:{port}"


def signature_type(chain_id: str) -> str:
    """``ed25519`` for Solana chains, ``eip191`` otherwise."""
    return "ed25519" if chain_id.startswith("solana:") else "eip191"


SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "domain": {"type": "string"},
        "address": {"type": "string"},
        "statement": {"type": "string"},
        "uri": {"type": "string", "format": "uri"},
        "version": {"type": "string"},
        "chainId": {"type": "string"},
        "type": {"type": "string"},
        "nonce": {"type": "string"},
        "issuedAt": {"type": "string", "format": "date-time"},
        "expirationTime": {"type": "string", "format": "date-time"},
        "notBefore": {"type": "string", "format": "date-time"},
        "requestId": {"type": "string"},
        "resources": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "signature": {"type": "string"},
    },
    "required": ["domain", "address", "uri", "version", "chainId", "type", "nonce", "issuedAt", "signature"],
}


def declaration(
    *,
    domain: str,
    uri: str,
    nonce: str,
    issued_at: datetime,
    expiration: datetime | None,
    chains: Sequence[str],
    statement: str | None = None,
) -> dict[str, Any]:
    """The ``extensions["sign-in-with-x"]`` value of one 402."""
    info: dict[str, Any] = {"domain": domain, "uri": uri, "version": "1", "nonce": nonce, "issuedAt": iso(issued_at)}
    if expiration is not None:
        info["expirationTime"] = iso(expiration)
    if statement:
        info["statement"] = statement
    info["resources"] = [uri]
    return {
        "info": info,
        "supportedChains": [{"chainId": c, "type": signature_type(c)} for c in chains],
        "schema": SCHEMA,
    }


def message(p: SiwxPayload) -> str:
    """The exact text the client signed: SIWE for ``eip155:*``, SIWS for ``solana:*``; SiwxRefused otherwise."""
    namespace, _, reference = p.chain_id.partition(":")
    if namespace == "eip155" and reference.isdigit():
        return _siwe(p, reference)
    if namespace == "solana" and reference:
        return _siws(p, reference)
    raise SiwxRefused(UNSUPPORTED_CHAIN, f"no sign-in message format for chain {p.chain_id!r}")


def _tail(p: SiwxPayload, chain_ref: str, *, siwe: bool) -> list[str]:
    lines = [f"URI: {p.uri}", f"Version: {p.version}", f"Chain ID: {chain_ref}", f"Nonce: {p.nonce}"]
    lines.append(f"Issued At: {p.issued_at}")
    if p.expiration_time:
        lines.append(f"Expiration Time: {p.expiration_time}")
    if p.not_before:
        lines.append(f"Not Before: {p.not_before}")
    # SIWE (the siwe library) writes a present requestId even when empty; SIWS only a non-empty one
    if isinstance(p.request_id, str) and (siwe or p.request_id):
        lines.append(f"Request ID: {p.request_id}")
    if isinstance(p.resources, list) and (siwe or p.resources):
        lines.append("\n".join(["Resources:", *(f"- {r}" for r in p.resources)]))
    return lines


def _siwe(p: SiwxPayload, chain_ref: str) -> str:
    head = f"{p.domain} wants you to sign in with your Ethereum account:\n{p.address}"
    head = head + "\n\n" if not isinstance(p.statement, str) else f"{head}\n\n{p.statement}\n"
    return head + "\n" + "\n".join(_tail(p, chain_ref, siwe=True))


def _siws(p: SiwxPayload, chain_ref: str) -> str:
    lines = [f"{p.domain} wants you to sign in with your Solana account:", p.address, ""]
    if p.statement:
        lines += [p.statement, ""]
    return "\n".join(lines + _tail(p, chain_ref, siwe=False))
