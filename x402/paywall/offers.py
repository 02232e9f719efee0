"""Declaring paid routes: ``Offer`` (one way to pay), ``PaidRoute`` (a route's offers) and the ``@paid`` decorator."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from x402.errors import ConfigError
from x402.wire import payment_identifier as pid
from x402.wire.assets import find_asset
from x402.wire.models import MAX_AMOUNT, PaymentRequirements, PaymentRequirementsV1
from x402.wire.networks import is_evm, to_caip2, to_v1_name

#: Attribute the ``@paid`` decorator sets on a handler.
PAID_ATTR: Final = "__x402_paid__"
#: ``payment_identifier`` modes: the 402 declares the extension; ``required`` refuses payments without an id (400).
IDENTIFIER_MODES: Final = ("optional", "required")
#: Credit modes of a route (x402/paywall/credits.py): credits only, or credits and else a per-request payment.
MODES: Final = ("credits", "credits-then-x402")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Offer:
    """One way to pay for a resource: ``amount`` atomic units of ``asset`` on ``network`` (CAIP-2) to ``pay_to``."""

    amount: int
    asset: str
    network: str
    pay_to: str
    max_timeout_seconds: int = 300
    extra: Mapping[str, Any] | None = None
    description: str = ""
    mime_type: str = ""
    bazaar: Mapping[str, Any] | None = None
    scheme: str = "exact"

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount <= 0:
            raise ConfigError(f"Offer.amount must be a positive int of atomic units, got {self.amount!r}")
        if self.amount >= MAX_AMOUNT:
            raise ConfigError("Offer.amount must be below 2**256")
        try:
            caip2 = to_caip2(self.network)
        except Exception:
            raise ConfigError(f"Offer.network {self.network!r} is not a CAIP-2 id or v1 network name") from None
        object.__setattr__(self, "network", caip2)
        if self.max_timeout_seconds <= 0:
            raise ConfigError("Offer.max_timeout_seconds must be positive")
        object.__setattr__(self, "extra", _fill_extra(caip2, self.asset, self.extra))

    def requirements(self) -> PaymentRequirements:
        """The v2 ``accepts`` entry of this offer."""
        return PaymentRequirements(
            scheme=self.scheme,
            network=self.network,
            amount=str(self.amount),
            asset=self.asset,
            pay_to=self.pay_to,
            max_timeout_seconds=self.max_timeout_seconds,
            extra=dict(self.extra or {}),
        )

    def v1_network(self, *, caip2_fallback: bool) -> str | None:
        """The v1 network name; with ``caip2_fallback`` the CAIP-2 id when v1 has no name for it (our extension)."""
        name = to_v1_name(self.network)
        if name is None and caip2_fallback:
            return self.network
        return name

    def requirements_v1(
        self, resource_url: str, route: PaidRoute, *, caip2_fallback: bool
    ) -> PaymentRequirementsV1 | None:
        """The v1 ``accepts`` entry of this offer, or None when v1 cannot name its network."""
        network = self.v1_network(caip2_fallback=caip2_fallback)
        if network is None:
            return None
        req = PaymentRequirementsV1(
            scheme=self.scheme,
            network=network,
            max_amount_required=str(self.amount),
            resource=resource_url,
            # the legacy JS client requires both strings (may be empty), so never omit them
            description=self.description or route.description,
            mime_type=self.mime_type or route.mime_type,
            pay_to=self.pay_to,
            max_timeout_seconds=self.max_timeout_seconds,
            asset=self.asset,
        )
        if self.extra:
            req.extra = dict(self.extra)
        return req


def _fill_extra(network: str, asset: str, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """EVM offers need the token's EIP-712 ``name``/``version``; take them from the default-asset table if missing."""
    out = dict(extra or {})
    if is_evm(network) and ("name" not in out or "version" not in out):
        known = find_asset(network, asset)
        if known is None or not known.name:
            raise ConfigError(
                f"Offer for {asset} on {network} needs extra={{'name': ..., 'version': ...}} (the token's EIP-712 "
                "domain): it is not a default asset"
            )
        out.setdefault("name", known.name)
        out.setdefault("version", known.version)
    return out


@dataclass(frozen=True, slots=True)
class CreditPrice:
    """What a request of a route costs in credits: ``credits``, or ``units`` of ``meter`` at the plan's burn rate."""

    credits: int | None = None
    meter: str | None = None
    units: int = 1
    mode: str = "credits-then-x402"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"CreditPrice.mode must be one of {MODES}, got {self.mode!r}")
        if (self.credits is None) == (self.meter is None):
            raise ConfigError("CreditPrice needs credits, or a meter (and units)")
        if self.meter is not None and not re.fullmatch(r"[a-z0-9_.:-]{1,64}", self.meter):
            raise ConfigError("CreditPrice.meter must be 1-64 characters of a-z 0-9 _ . : -")
        if self.credits is not None and (
            isinstance(self.credits, bool) or not isinstance(self.credits, int) or self.credits < 1
        ):
            raise ConfigError(f"CreditPrice.credits must be a positive int, got {self.credits!r}")
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units < 1:
            raise ConfigError(f"CreditPrice.units must be a positive int, got {self.units!r}")


@dataclass(frozen=True, slots=True)
class PaidRoute:
    """A paid resource: the offers a client may pick from, and how to describe the resource."""

    offers: tuple[Offer, ...]
    description: str = ""
    mime_type: str = ""
    #: absolute resource URL; by default the request's own URL (scheme, host and path, no query)
    resource_url: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    #: declare the payment-identifier extension: "optional" or "required" (None: the Paywall's default)
    payment_identifier: str | None = None
    #: with Sign-In-With-X on the paywall: how long (seconds) a payer may sign in to this purchase after paying
    #: (None: ``SiwxConfig.entitlement_seconds``; 0: never, always pay)
    sign_in_seconds: int | None = None
    #: paid in prepaid credits (x402/paywall/credits.py); mode ``credits`` needs no offers
    credits: CreditPrice | None = None

    def __post_init__(self) -> None:
        check_identifier_mode(self.payment_identifier)
        offers = tuple(self.offers)
        if self.credits is not None and not isinstance(self.credits, CreditPrice):
            raise ConfigError("PaidRoute.credits must be a CreditPrice")
        credits_only = self.credits is not None and self.credits.mode == "credits"
        if credits_only and offers:
            raise ConfigError("a credits-only route takes no offers (mode credits-then-x402 pays them)")
        if not all(isinstance(o, Offer) for o in offers) or (not offers and not credits_only):
            raise ConfigError("a PaidRoute needs at least one Offer (or credits in mode 'credits')")
        object.__setattr__(self, "offers", offers)
        if not self.description:
            object.__setattr__(self, "description", next((o.description for o in offers if o.description), ""))
        if not self.mime_type:
            object.__setattr__(self, "mime_type", next((o.mime_type for o in offers if o.mime_type), ""))

    def all_extensions(self) -> dict[str, Any]:
        """Declared extensions, plus ``bazaar`` built from the first offer that carries bazaar info."""
        out = dict(self.extensions)
        info = next((o.bazaar for o in self.offers if o.bazaar), None)
        if info is not None and "bazaar" not in out:
            out["bazaar"] = {"info": dict(info), "schema": {"type": "object"}}
        if self.payment_identifier is not None and pid.KEY not in out:
            out[pid.KEY] = pid.declaration(self.payment_identifier == "required")
        return out


def check_identifier_mode(mode: str | None) -> None:
    """Refuse a ``payment_identifier`` setting other than None, "optional" or "required"."""
    if mode is not None and mode not in IDENTIFIER_MODES:
        raise ConfigError(f"payment_identifier must be one of {IDENTIFIER_MODES} or None, got {mode!r}")


def as_paid_route(value: PaidRoute | Offer | Sequence[Offer]) -> PaidRoute:
    """Accept a PaidRoute, one Offer or a list of Offers."""
    if isinstance(value, PaidRoute):
        return value
    if isinstance(value, Offer):
        return PaidRoute((value,))
    return PaidRoute(tuple(value))


def paid(
    *offers: Offer,
    description: str = "",
    mime_type: str = "",
    resource_url: str | None = None,
    payment_identifier: str | None = None,
    credits: CreditPrice | None = None,
) -> Callable[[F], F]:
    """Mark an aiohttp handler as paid; the ``Paywall`` middleware charges for it (``credits``: in credits)."""
    route = PaidRoute(
        tuple(offers),
        description=description,
        mime_type=mime_type,
        resource_url=resource_url,
        payment_identifier=payment_identifier,
        credits=credits,
    )

    def mark(handler: F) -> F:
        setattr(handler, PAID_ATTR, route)
        return handler

    return mark


def paid_route_of(handler: object) -> PaidRoute | None:
    """The PaidRoute a handler was marked with, if any."""
    route = getattr(handler, PAID_ATTR, None)
    return route if isinstance(route, PaidRoute) else None
