"""Sign-In-With-X on the paywall: a payer who already paid for a route signs in instead of paying again.

* Every 402 of a route carries a fresh ``sign-in-with-x`` declaration (a new single-use nonce, ``issuedAt`` now).
* ``SIGN-IN-WITH-X`` on a request is checked in this order, each failure a 402 whose ``error`` is the reason code
  (``x402.wire.siwx.REASONS``) with a fresh challenge, so the client can pay in the same round trip: the header
  parses; ``domain`` is the request's host; ``uri`` is on the resource's origin; ``issuedAt`` parses, is not in the
  future (``clock_skew`` allowed) and not older than ``max_age``; ``expirationTime`` (if any) is ahead,
  ``notBefore`` (if any) behind; the chain is one we declared; the signature (EOA ECDSA, EIP-1271 or ERC-6492 via
  ``contract_signatures`` for EVM, ed25519 for Solana); the address holds an entitlement to this purchase; and
  the nonce was never used before (consumed only when access is granted).
* An entitlement is recorded when a payment settles: the payer's address, bound to method + path + query + price
  version (a hash of the route's offers, so a price change needs a new payment), valid for the route's
  ``sign_in_seconds`` (or ``SiwxConfig.entitlement_seconds``).

Storage is the ``SiwxStore`` protocol: the service's Postgres store (``x402.service.siwx_store``), or a provider's
own. ``MemorySiwxStore`` keeps everything in this process (one worker, lost on restart).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol
from urllib.parse import urlsplit

import msgspec

from x402.wire import siwx
from x402.wire.models import PaymentRequired, PaymentRequirements, ResourceInfo, encode_json

DEFAULT_MAX_AGE: Final = 300.0
DEFAULT_ENTITLEMENT: Final = 24 * 3600


class SiwxStore(Protocol):
    """Entitlements and used nonces."""

    async def record_entitlement(self, address: str, purchase: str, expires_at: datetime) -> None:
        """Remember that ``address`` paid for ``purchase`` (a ``purchase_key``) until ``expires_at``."""
        ...

    async def has_entitlement(self, address: str, purchase: str, now: datetime) -> bool:
        """True when ``address`` holds an unexpired entitlement to ``purchase``."""
        ...

    async def use_nonce(self, nonce: str, expires_at: datetime) -> bool:
        """Mark ``nonce`` used; False when it was used before (a replay)."""
        ...


class ContractSignatures(Protocol):
    """EIP-1271 / ERC-6492 checks of a smart-wallet signature over an EIP-191 digest (needs the chain)."""

    async def is_valid(self, chain_id: str, address: str, digest: bytes, signature: bytes) -> bool:
        """True when the contract wallet at ``address`` (deployed, or counterfactual per ERC-6492) accepts it."""
        ...


@dataclass(slots=True)
class MemorySiwxStore:
    """An in-process ``SiwxStore`` (one worker; forgotten on restart)."""

    entitlements: dict[tuple[str, str], datetime] = field(default_factory=dict)
    nonces: dict[str, datetime] = field(default_factory=dict)

    async def record_entitlement(self, address: str, purchase: str, expires_at: datetime) -> None:
        """See ``SiwxStore``."""
        key = (address, purchase)
        self.entitlements[key] = max(expires_at, self.entitlements.get(key, expires_at))

    async def has_entitlement(self, address: str, purchase: str, now: datetime) -> bool:
        """See ``SiwxStore``."""
        until = self.entitlements.get((address, purchase))
        return until is not None and until > now

    async def use_nonce(self, nonce: str, expires_at: datetime) -> bool:
        """See ``SiwxStore``."""
        if nonce in self.nonces:
            return False
        self.nonces[nonce] = expires_at
        return True


@dataclass(frozen=True, slots=True)
class SiwxConfig:
    """How a paywall offers Sign-In-With-X."""

    store: SiwxStore
    #: chains a client may sign in with (CAIP-2); by default the networks of each route's offers
    chains: Sequence[str] = ()
    #: EIP-1271 / ERC-6492 verification; without it only EOA signatures are accepted on EVM
    contract_signatures: ContractSignatures | None = None
    #: how long a paid purchase can be signed into (routes may set ``PaidRoute.sign_in_seconds``)
    entitlement_seconds: int = DEFAULT_ENTITLEMENT
    max_age: float = DEFAULT_MAX_AGE
    clock_skew: float = 5.0
    statement: str = "Sign in to use what you already paid for"


def price_version(requirements: Sequence[PaymentRequirements]) -> str:
    """A short hash of a route's offers: a new price (or asset, payTo, network) is a new version."""
    canonical = msgspec.json.encode(sorted(msgspec.to_builtins(list(requirements)), key=msgspec.json.encode))
    return hashlib.sha256(canonical).hexdigest()[:16]


def purchase_key(method: str, path: str, query: str, version: str) -> str:
    """What an entitlement is bound to: method, path, query string (sorted) and price version."""
    params = "&".join(sorted(query.split("&"))) if query else ""
    return hashlib.sha256(f"{method.upper()}\n{path}\n{params}\n{version}".encode()).hexdigest()


def challenge(config: SiwxConfig, url: str, chains: Sequence[str], now: datetime | None = None) -> dict[str, object]:
    """A fresh declaration for one 402 (new nonce, ``issuedAt`` now, expiring after ``max_age``)."""
    issued = now or datetime.now(UTC)
    return siwx.declaration(
        domain=siwx.host_of(url),
        uri=url,
        nonce=secrets.token_hex(16),
        issued_at=issued,
        expiration=issued + timedelta(seconds=config.max_age),
        chains=list(config.chains) or list(dict.fromkeys(chains)),
        statement=config.statement,
    )


def normalize_address(address: str) -> str:
    """How entitlements key an address: EVM lower-case, others (base58) as they are."""
    return address.lower() if address.startswith("0x") else address


def sign_in_chains(networks: Sequence[str]) -> list[str]:
    """The networks of a route a client can sign in with (EVM and Solana)."""
    return [n for n in dict.fromkeys(networks) if n.startswith(("eip155:", "solana:"))]


_NONCE: Final = b"@@x402-siwx-nonce@@"
_ISSUED: Final = b"@@x402-siwx-issued-at@@"
_EXPIRES: Final = b"@@x402-siwx-expires@@"


@dataclass(frozen=True, slots=True)
class ChallengeTemplate:
    """A 402's ``PAYMENT-REQUIRED`` JSON encoded once with marks where the nonce and the times go.

    A 402 then costs three ``bytes.replace`` and a base64 encoding instead of building and encoding the document.
    """

    json: bytes
    max_age: float

    @classmethod
    def build(
        cls, config: SiwxConfig, required: PaymentRequired, extensions: dict[str, object], chains: Sequence[str]
    ) -> ChallengeTemplate:
        """Mark the declaration's nonce and times in ``required`` with ``extensions`` and the SIWx declaration."""
        url = required.resource.url if isinstance(required.resource, ResourceInfo) else ""
        declared = challenge(config, url, chains)
        info = declared["info"]
        assert isinstance(info, dict)
        info.update(nonce=_NONCE.decode(), issuedAt=_ISSUED.decode(), expirationTime=_EXPIRES.decode())
        marked = msgspec.structs.replace(required, extensions={**extensions, siwx.KEY: declared})
        return cls(encode_json(marked), config.max_age)

    def render(self) -> str:
        """The ``PAYMENT-REQUIRED`` value with a fresh nonce, ``issuedAt`` now and the expiry."""
        now = datetime.now(UTC)
        raw = (
            self.json.replace(_NONCE, secrets.token_hex(16).encode())
            .replace(_ISSUED, siwx.iso(now).encode())
            .replace(_EXPIRES, siwx.iso(now + timedelta(seconds=self.max_age)).encode())
        )
        return base64.b64encode(raw).decode("ascii")


def check_message(p: siwx.SiwxPayload, *, resource_url: str, chains: Sequence[str], config: SiwxConfig) -> None:
    """The field rules (no signature, no storage); raises SiwxRefused with the reason code."""
    host = siwx.host_of(resource_url)
    if p.domain.lower() != host:
        raise siwx.SiwxRefused(siwx.DOMAIN_MISMATCH, f"domain {p.domain!r} is not this host ({host!r})")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(resource_url))
    if not (p.uri == origin or p.uri.startswith(origin + "/")):
        raise siwx.SiwxRefused(siwx.URI_MISMATCH, f"uri {p.uri!r} is not on {origin}")
    now = time.time()
    issued = siwx.parse_time(p.issued_at)
    if issued is None:
        raise siwx.SiwxRefused(siwx.INVALID_ISSUED_AT, "issuedAt is not an ISO-8601 timestamp with a zone")
    age = now - issued.timestamp()
    if age < -config.clock_skew:
        raise siwx.SiwxRefused(siwx.ISSUED_AT_IN_FUTURE, "issuedAt is in the future")
    if age > config.max_age:
        raise siwx.SiwxRefused(siwx.ISSUED_AT_TOO_OLD, f"issuedAt is {int(age)} s old (at most {int(config.max_age)})")
    if isinstance(p.expiration_time, str):
        expires = siwx.parse_time(p.expiration_time)
        if expires is None:
            raise siwx.SiwxRefused(siwx.INVALID_EXPIRATION, "expirationTime is not an ISO-8601 timestamp with a zone")
        if expires.timestamp() <= now:
            raise siwx.SiwxRefused(siwx.EXPIRED, "the sign-in message has expired")
    if isinstance(p.not_before, str):
        start = siwx.parse_time(p.not_before)
        if start is None:
            raise siwx.SiwxRefused(siwx.INVALID_NOT_BEFORE, "notBefore is not an ISO-8601 timestamp with a zone")
        if start.timestamp() > now + config.clock_skew:
            raise siwx.SiwxRefused(siwx.NOT_YET_VALID, "the sign-in message is not valid yet (notBefore)")
    allowed = list(config.chains) or list(chains)
    if p.chain_id not in allowed or p.type != siwx.signature_type(p.chain_id):
        raise siwx.SiwxRefused(siwx.UNSUPPORTED_CHAIN, f"sign in with one of {allowed} ({p.chain_id!r} given)")


async def check_signature(p: siwx.SiwxPayload, config: SiwxConfig) -> str:
    """The signer's address (EVM lower-case, Solana base58) when the signature is valid; raises SiwxRefused."""
    text = siwx.message(p)
    if p.chain_id.startswith("solana:"):
        if not ed25519_valid(text, p.signature, p.address):
            raise siwx.SiwxRefused(siwx.INVALID_SIGNATURE, "the ed25519 signature does not verify for address")
        return p.address
    sig = _hex(p.signature)
    address = p.address.lower()
    if sig is None or len(address) != 42 or _hex(address) is None:
        raise siwx.SiwxRefused(siwx.INVALID_SIGNATURE, "address and signature must be 0x-hex")
    digest = eip191_digest(text)
    if len(sig) == 65 and ecrecover(digest, sig) == address:
        return address
    if config.contract_signatures is not None and await config.contract_signatures.is_valid(
        p.chain_id, p.address, digest, sig
    ):
        return address
    raise siwx.SiwxRefused(siwx.INVALID_SIGNATURE, "the signature is not the address's (EOA, EIP-1271 or ERC-6492)")


def eip191_digest(text: str) -> bytes:
    """``keccak256("\\x19Ethereum Signed Message:\\n" + len + message)``."""
    from eth_hash.auto import keccak

    body = text.encode("utf-8")
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(body)).encode() + body)


def ecrecover(digest: bytes, sig: bytes) -> str | None:
    """The lower-case address that signed ``digest`` (65-byte r||s||v), or None."""
    import coincurve
    from eth_hash.auto import keccak

    v = sig[64] - 27 if sig[64] >= 27 else sig[64]
    if v not in (0, 1):
        return None
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig[:64] + bytes([v]), digest, hasher=None)
    except (ValueError, TypeError):
        return None
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()


_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(value: str) -> bytes | None:
    """Bitcoin-alphabet base58 (Solana addresses and signatures); None when it is not base58."""
    if not value or len(value) > 128:
        return None
    n = 0
    for ch in value:
        digit = _B58.find(ch)
        if digit < 0:
            return None
        n = n * 58 + digit
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * (len(value) - len(value.lstrip("1"))) + body


def ed25519_valid(text: str, signature: str, address: str) -> bool:
    """True when base58 ``signature`` is ``address``'s ed25519 signature of ``text``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key, sig = b58decode(address), b58decode(signature)
    if key is None or sig is None or len(key) != 32 or len(sig) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, text.encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


def _hex(value: str) -> bytes | None:
    if not value.startswith("0x") or len(value) % 2:
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


__all__ = [
    "ContractSignatures",
    "MemorySiwxStore",
    "SiwxConfig",
    "SiwxStore",
    "challenge",
    "check_message",
    "check_signature",
    "normalize_address",
    "price_version",
    "purchase_key",
    "sign_in_chains",
]
