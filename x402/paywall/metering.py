"""Pricing by use (``upto``, architecture.md §12.2): the handler reports the actual amount, the paywall settles it.

A paid handler of an ``upto`` route sets the response header ``Settlement-Overrides: {"amount": "..."}``
(``settlement_overrides(response, amount)``); the paywall removes the header before the buyer sees the response
and settles that amount, at most the signed maximum (the offer's amount). The amount is atomic units (``"1000"``),
a percentage of the maximum (``"50%"``, up to two decimals, floored) or a dollar price (``"$0.05"``, in the
asset's decimals, 6 when unknown; rounded), as the official servers read it. Without the header the maximum is
settled. The header means nothing on other schemes (it is still removed).
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

import msgspec
from aiohttp import web

from x402.facilitator.base import AnyRequirements
from x402.wire.assets import find_asset
from x402.wire.models import PaymentRequirements, is_canonical_uint

#: The response header a handler sets to settle less than the maximum (server-internal, stripped).
SETTLEMENT_OVERRIDES: Final = "Settlement-Overrides"
#: The scheme whose settlement amount a handler may lower.
METERED_SCHEME: Final = "upto"


class SettlementOverrideError(ValueError):
    """The handler's ``Settlement-Overrides`` is unreadable or above the signed maximum (the provider's bug)."""


def settlement_overrides(response: web.StreamResponse, amount: int) -> None:
    """Tell the paywall to settle ``amount`` atomic units for this ``upto`` request (0: charge nothing)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise SettlementOverrideError(f"the settlement amount must be a non-negative int, got {amount!r}")
    response.headers[SETTLEMENT_OVERRIDES] = json.dumps({"amount": str(amount)})


def settle_requirements(requirements: AnyRequirements, override: str | None) -> AnyRequirements:
    """The requirements to settle: for ``upto`` with an override, the same with the actual ``amount``."""
    if override is None or not isinstance(requirements, PaymentRequirements) or requirements.scheme != METERED_SCHEME:
        return requirements
    try:
        doc = json.loads(override)
    except ValueError:
        raise SettlementOverrideError("Settlement-Overrides is not JSON") from None
    raw = doc.get("amount") if isinstance(doc, dict) else None
    amount = _atomic(raw, requirements)
    if amount > int(requirements.amount):
        raise SettlementOverrideError(f"the settlement amount {raw} exceeds the signed maximum {requirements.amount}")
    return msgspec.structs.replace(requirements, amount=str(amount))


_PERCENT: Final = re.compile(r"(\d{1,3})(?:\.(\d{1,2}))?%")
_DOLLARS: Final = re.compile(r"\$(\d{1,15})(?:\.(\d{1,18}))?")


def _atomic(raw: object, requirements: PaymentRequirements) -> int:
    """Atomic units of an override amount: ``"1000"``, ``"50%"`` of the maximum, or ``"$0.05"``."""
    if not isinstance(raw, str):
        raise SettlementOverrideError('Settlement-Overrides needs {"amount": "<atomic units | N% | $D>"}')
    if is_canonical_uint(raw):
        return int(raw)
    percent = _PERCENT.fullmatch(raw)
    if percent is not None:
        hundredths = int(percent[1]) * 100 + int((percent[2] or "").ljust(2, "0"))
        return int(requirements.amount) * hundredths // 10_000
    dollars = _DOLLARS.fullmatch(raw)
    if dollars is not None:
        known = find_asset(requirements.network, requirements.asset)
        decimals = known.decimals if known is not None else 6
        value = Decimal(raw[1:]) * (Decimal(10) ** decimals)
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    raise SettlementOverrideError(f"unreadable Settlement-Overrides amount {raw[:40]!r}")
