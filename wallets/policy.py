"""A wallet's spending policy: budget, caps, allowlists, expiry, approval threshold, auto-pause triggers."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final

from wallets import errors
from x402.errors import BadRequest, ValidationFailed
from x402.wire.models import PaymentRequirements, is_canonical_uint
from x402.wire.networks import is_evm, matches

#: Rolling windows (name, seconds) the caps apply to.
WINDOWS: Final = (("daily", 86_400), ("weekly", 7 * 86_400), ("monthly", 30 * 86_400))
_MONEY = ("totalBudget", "perPaymentCap", "dailyCap", "weeklyCap", "monthlyCap", "approvalThreshold")
_LISTS = ("allowedUrls", "allowedPayees", "allowedNetworks", "allowedAssets")


@dataclass(frozen=True, slots=True)
class AutoPause:
    """When the wallet pauses itself: N failures in a row, more than X payments in 60 s, a share of a cap used."""

    consecutive_failures: int | None = 5
    velocity_per_minute: int | None = 120
    cap_share: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Wire shape (camelCase); a disabled trigger is ``null`` so it stays disabled when read back."""
        return {
            "consecutiveFailures": self.consecutive_failures,
            "velocityPerMinute": self.velocity_per_minute,
            "capShare": self.cap_share,
        }


@dataclass(frozen=True, slots=True)
class Policy:
    """Money fields are atomic units (int); None means no limit / no allowlist."""

    total_budget: int | None = None
    per_payment_cap: int | None = None
    daily_cap: int | None = None
    weekly_cap: int | None = None
    monthly_cap: int | None = None
    approval_threshold: int | None = None
    allowed_urls: tuple[str, ...] | None = None
    allowed_payees: tuple[str, ...] | None = None
    allowed_networks: tuple[str, ...] | None = None
    allowed_assets: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    #: refuse resources whose trust score (docs/trust.md) is below this, or that have none (0..100)
    min_resource_trust: int | None = None
    auto_pause: AutoPause = field(default_factory=AutoPause)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Policy:
        """Parse the API / stored shape; raises BadRequest (not an object) / ValidationFailed ``invalid_policy``."""
        if doc is not None and not isinstance(doc, Mapping):
            raise BadRequest(f"policy must be a JSON object, not {_json_type(doc)}", code="invalid_policy")
        doc = dict(doc or {})
        known = {*_MONEY, *_LISTS, "expiresAt", "autoPause", "minResourceTrust"}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValidationFailed(f"unknown policy fields {unknown}; known: {sorted(known)}", code="invalid_policy")
        kw: dict[str, Any] = {}
        for name in _MONEY:
            if doc.get(name) is not None:
                kw[_snake(name)] = _money(name, doc[name])
        for name in _LISTS:
            if doc.get(name) is not None:
                kw[_snake(name)] = _strings(name, doc[name])
        if doc.get("expiresAt") is not None:
            kw["expires_at"] = _when(doc["expiresAt"])
        if doc.get("minResourceTrust") is not None:
            kw["min_resource_trust"] = _trust(doc["minResourceTrust"])
        if doc.get("autoPause") is not None:
            kw["auto_pause"] = _auto_pause(doc["autoPause"])
        return cls(**kw)

    def to_json(self) -> dict[str, Any]:
        """Wire shape: money as decimal strings, unset fields omitted."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            key = _camel(f.name)
            if f.name == "min_resource_trust":
                out[key] = value
            elif isinstance(value, int):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
            elif isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, AutoPause):
                out[key] = value.to_json()
        return out

    def caps(self) -> list[tuple[str, int, int]]:
        """``(window name, seconds, cap)`` of every configured rolling cap."""
        return [(name, seconds, cap) for name, seconds in WINDOWS if (cap := getattr(self, f"{name}_cap")) is not None]

    # ------------------------------------------------------------------------------- checks

    def check_active(self, now: datetime | None = None) -> None:
        """Raise ``wallet_expired`` once the expiry passed."""
        if self.expires_at is not None and (now or datetime.now(UTC)) >= self.expires_at:
            raise errors.WalletExpired(f"the wallet expired at {self.expires_at.isoformat()}")

    def check_url(self, url: str) -> None:
        """Raise ``url_not_allowed`` unless the URL matches an allowed pattern (fnmatch)."""
        if self.allowed_urls is not None and not any(fnmatch.fnmatchcase(url, p) for p in self.allowed_urls):
            raise errors.UrlNotAllowed(f"{url} matches none of the wallet's allowed URL patterns", url=url)

    def refusal(self, offer: PaymentRequirements, amount: int, max_amount: int | None) -> errors.PolicyViolation | None:
        """The error refusing this offer (allowlists, per-payment cap, caller's max), or None when allowed."""
        if self.allowed_networks is not None and not any(matches(p, offer.network) for p in self.allowed_networks):
            return errors.NetworkNotAllowed(f"network {offer.network} is not allowed", network=offer.network)
        if self.allowed_assets is not None and not _listed(offer.network, offer.asset, self.allowed_assets):
            return errors.AssetNotAllowed(f"asset {offer.asset} is not allowed", asset=offer.asset)
        if self.allowed_payees is not None and not _listed(offer.network, offer.pay_to, self.allowed_payees):
            return errors.PayeeNotAllowed(f"payee {offer.pay_to} is not allowed", payTo=offer.pay_to)
        if max_amount is not None and amount > max_amount:
            return errors.OverMaxAmount(
                f"the price {amount} is above maxAmount {max_amount}", amount=str(amount), maxAmount=str(max_amount)
            )
        if self.per_payment_cap is not None and amount > self.per_payment_cap:
            return errors.PerPaymentCapExceeded(
                f"the price {amount} is above the per-payment cap {self.per_payment_cap}",
                amount=str(amount),
                cap=str(self.per_payment_cap),
            )
        return None

    def check_trust(self, url: str, trust: int | None) -> None:
        """Raise ``resource_trust_too_low`` when a minimum is set and the resource's score is missing or below it."""
        if self.min_resource_trust is None:
            return
        if trust is None or trust < self.min_resource_trust:
            shown = "no trust score" if trust is None else f"trust {trust}"
            raise errors.ResourceTrustTooLow(
                f"{url} has {shown}, below the wallet's minResourceTrust {self.min_resource_trust}",
                url=url,
                trust=trust,
                minResourceTrust=self.min_resource_trust,
            )

    def needs_approval(self, amount: int) -> bool:
        """True when a payment of ``amount`` waits for a person."""
        return self.approval_threshold is not None and amount > self.approval_threshold


def _listed(network: str, value: str, allowed: Sequence[str]) -> bool:
    if "*" in allowed:
        return True
    if is_evm(network):
        return value.lower() in {a.lower() for a in allowed}
    return value in allowed


def _json_type(value: object) -> str:
    names = {str: "a string", list: "an array", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _money(name: str, raw: Any) -> int:
    # the one wire spelling of an amount: a decimal string without leading zeros (JSON numbers lose precision)
    if not is_canonical_uint(raw):
        raise ValidationFailed(
            f"{name} must be a decimal string of atomic units without leading zeros", code="invalid_policy"
        )
    return int(raw)


def _trust(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 100:
        raise ValidationFailed("minResourceTrust must be an integer from 0 to 100", code="invalid_policy")
    return int(raw)


def _strings(name: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw) or len(raw) > 1000:
        raise ValidationFailed(f"{name} must be a list of non-empty strings", code="invalid_policy")
    return tuple(raw)


def _when(raw: Any) -> datetime:
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        raise ValidationFailed("expiresAt must be an ISO 8601 time", code="invalid_policy") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _auto_pause(raw: Any) -> AutoPause:
    if not isinstance(raw, Mapping):
        raise ValidationFailed("autoPause must be an object", code="invalid_policy")
    unknown = sorted(set(raw) - {"consecutiveFailures", "velocityPerMinute", "capShare"})
    if unknown:
        raise ValidationFailed(f"unknown autoPause fields {unknown}", code="invalid_policy")
    out = AutoPause()
    kw: dict[str, Any] = {
        "consecutive_failures": out.consecutive_failures,
        "velocity_per_minute": out.velocity_per_minute,
        "cap_share": out.cap_share,
    }
    for key, attr in (("consecutiveFailures", "consecutive_failures"), ("velocityPerMinute", "velocity_per_minute")):
        if key in raw:
            value = raw[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValidationFailed(f"autoPause.{key} must be a positive integer or null", code="invalid_policy")
            kw[attr] = value
    if "capShare" in raw:
        share = raw["capShare"]
        if share is not None and (isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1):
            raise ValidationFailed("autoPause.capShare must be in (0, 1] or null", code="invalid_policy")
        kw["cap_share"] = None if share is None else float(share)
    return AutoPause(**kw)
