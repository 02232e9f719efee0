"""Pricing tiers: monthly price (cents), monthly verification quota, per-second rate limit; JSON-overridable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from x402.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Tier:
    """One plan. ``overage`` False means requests beyond the quota are refused (free); True means counted."""

    name: str
    price_cents: int
    monthly_quota: int
    rate_per_second: int
    overage: bool

    def to_json(self) -> dict[str, Any]:
        """Wire shape (camelCase)."""
        return {
            "name": self.name,
            "priceCents": self.price_cents,
            "monthlyQuota": self.monthly_quota,
            "ratePerSecond": self.rate_per_second,
            "overage": self.overage,
        }


DEFAULT_TIERS: Mapping[str, Tier] = {
    "free": Tier("free", 0, 1_000, 5, overage=False),
    "starter": Tier("starter", 4_900, 50_000, 25, overage=True),
    "pro": Tier("pro", 19_900, 500_000, 100, overage=True),
    "enterprise": Tier("enterprise", 99_900, 5_000_000, 500, overage=True),
}

_FIELDS = {
    "priceCents": "price_cents",
    "monthlyQuota": "monthly_quota",
    "ratePerSecond": "rate_per_second",
    "overage": "overage",
}


def load_tiers(override: Mapping[str, Any] | None) -> dict[str, Tier]:
    """The default table with ``X402_TIERS`` applied: ``{"free": {"monthlyQuota": 100}, "team": {...}}``."""
    tiers = dict(DEFAULT_TIERS)
    for name, raw in (override or {}).items():
        if not isinstance(raw, Mapping):
            raise ConfigError(f"X402_TIERS.{name} must be an object")
        base = tiers.get(name, Tier(name, 0, 0, 1, overage=False))
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            attr = _FIELDS.get(key)
            if attr is None:
                raise ConfigError(f"X402_TIERS.{name}: unknown field {key!r}; known: {sorted(_FIELDS)}")
            if attr == "overage":
                if not isinstance(value, bool):
                    raise ConfigError(f"X402_TIERS.{name}.overage must be true or false")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"X402_TIERS.{name}.{key} must be a non-negative integer")
            changes[attr] = value
        tier = replace(base, **changes)
        if tier.rate_per_second < 1:
            raise ConfigError(f"X402_TIERS.{name}.ratePerSecond must be at least 1")
        tiers[name] = tier
    return tiers
