"""The 402 challenge of a paid route, encoded once per (route, resource URL) and reused for every request."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from multidict import CIMultiDict

from x402.paywall.offers import PaidRoute
from x402.paywall.page import render_page
from x402.wire import payment_identifier as pid
from x402.wire.codec import PAYMENT_REQUIRED, encode_header
from x402.wire.models import (
    PaymentRequired,
    PaymentRequiredV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
    encode_json,
)

#: ``error`` of a plain "you have not paid" challenge (the official servers' wording).
PAYMENT_REQUIRED_ERROR: Final = "Payment required"
#: Headers browsers may read from a paid response (architecture.md §1.3).
EXPOSE_HEADERS: Final = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"
_MAX_CACHED: Final = 4096


@dataclass(slots=True)
class Challenge:
    """A route's offers for one resource URL, with the default 402 header and body already encoded."""

    route: PaidRoute
    resource: ResourceInfo
    requirements: tuple[PaymentRequirements, ...]
    #: aligned with ``requirements``; None where v1 has no name for the offer's network
    requirements_v1: tuple[PaymentRequirementsV1 | None, ...]
    extensions: dict[str, Any]
    versions: frozenset[int]
    #: the payment-identifier mode of this challenge: None, "optional" or "required"
    identifier_mode: str | None = None
    header: str | None = None
    body: bytes = b"{}"
    #: the default 402's headers (copied per response: aiohttp adds to them)
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    _html: bytes | None = field(default=None, repr=False)

    def payment_required(self, error: str) -> PaymentRequired:
        """The v2 ``PAYMENT-REQUIRED`` object with this ``error``."""
        required = PaymentRequired(error=error, resource=self.resource, accepts=list(self.requirements))
        if self.extensions:
            required.extensions = self.extensions
        return required

    def encode(self, error: str) -> tuple[str | None, bytes]:
        """``(PAYMENT-REQUIRED value or None, body)`` for an ``error``; the default one is precomputed."""
        if error == PAYMENT_REQUIRED_ERROR:
            return self.header, self.body
        header = encode_header(self.payment_required(error)) if 2 in self.versions else None
        return header, self._body(error)

    def _body(self, error: str) -> bytes:
        if 1 not in self.versions:
            return b"{}"
        accepts = [r for r in self.requirements_v1 if r is not None]
        return encode_json(PaymentRequiredV1(error=error, accepts=accepts))

    def html(self) -> bytes:
        """The browser paywall page (rendered on first use)."""
        if self._html is None:
            required = self.payment_required(PAYMENT_REQUIRED_ERROR)
            self._html = render_page(
                list(self.requirements),
                self.resource.url,
                self.route.description,
                msgspec.to_builtins(required),
            )
        return self._html


class ChallengeCache:
    """Builds challenges and keeps them per (route, resource URL); bounded, since the Host header is client input."""

    def __init__(
        self, *, versions: Collection[int] = (1, 2), v1_caip2: bool = False, payment_identifier: str | None = None
    ) -> None:
        self.versions = frozenset(versions)
        self.v1_caip2 = v1_caip2
        #: the paywall's default payment-identifier mode for routes that do not set one
        self.payment_identifier = payment_identifier
        self._cache: dict[tuple[int, str], Challenge] = {}
        #: ``extra`` the facilitator announces per network (e.g. Solana's ``feePayer``), filled in where offers lack it
        self.kind_extra: dict[tuple[str, str], dict[str, Any]] = {}

    def set_kind_extra(self, kind_extra: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        """Use the facilitator's per-(scheme, network) ``extra`` (from ``/supported``: Solana's ``feePayer``,
        ``upto``'s ``facilitatorAddress``) for offers that do not set it."""
        self.kind_extra = {kind: dict(extra) for kind, extra in kind_extra.items() if extra}
        self._cache.clear()

    def _with_kind_extra(self, scheme: str, network: str, extra: Mapping[str, Any] | None) -> dict[str, Any] | None:
        announced = self.kind_extra.get((scheme, network))
        if not announced:
            return None
        return {**announced, **(extra or {})}

    def get(self, route: PaidRoute, url: str) -> Challenge:
        """The challenge of ``route`` served at ``url``."""
        key = (id(route), url)
        hit = self._cache.get(key)
        if hit is not None and hit.route is route:
            return hit
        challenge = self.build(route, url)
        if len(self._cache) < _MAX_CACHED:
            self._cache[key] = challenge
        return challenge

    def build(self, route: PaidRoute, url: str) -> Challenge:
        """Encode a route's challenge for ``url``."""
        url = route.resource_url or url
        resource = ResourceInfo(url=url, description=route.description, mime_type=route.mime_type)
        reqs = []
        for o in route.offers:
            r = o.requirements()
            merged = self._with_kind_extra(r.scheme, r.network, r.extra)
            reqs.append(msgspec.structs.replace(r, extra=merged) if merged is not None else r)
        reqs_v1 = []
        for o, r2 in zip(route.offers, reqs, strict=True):
            r1 = o.requirements_v1(url, route, caip2_fallback=self.v1_caip2)
            if r1 is not None and r2.extra:
                own = {} if isinstance(r1.extra, msgspec.UnsetType) else r1.extra
                r1 = msgspec.structs.replace(r1, extra={**r2.extra, **own})
            reqs_v1.append(r1)
        extensions = route.all_extensions()
        mode = route.payment_identifier or self.payment_identifier
        if mode is not None and pid.KEY not in extensions:
            extensions[pid.KEY] = pid.declaration(mode == "required")
        challenge = Challenge(
            route=route,
            resource=resource,
            requirements=tuple(reqs),
            requirements_v1=tuple(reqs_v1),
            extensions=extensions,
            versions=self.versions,
            identifier_mode=mode,
        )
        if 2 in self.versions:
            challenge.header = encode_header(challenge.payment_required(PAYMENT_REQUIRED_ERROR))
        challenge.body = challenge._body(PAYMENT_REQUIRED_ERROR)
        challenge.headers = challenge_headers(challenge.header)
        return challenge


def challenge_headers(payment_required: str | None, content_type: str = "application/json") -> CIMultiDict[str]:
    """The headers of a 402 challenge."""
    headers: CIMultiDict[str] = CIMultiDict()
    if payment_required is not None:
        headers[PAYMENT_REQUIRED] = payment_required
    headers["Cache-Control"] = "no-store"
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    headers["Content-Type"] = content_type
    return headers


__all__ = [
    "EXPOSE_HEADERS",
    "PAYMENT_REQUIRED",
    "PAYMENT_REQUIRED_ERROR",
    "Challenge",
    "ChallengeCache",
    "challenge_headers",
]
