"""Pricing by use (``upto``, architecture.md §12.2): the handler reports the actual amount, the paywall settles it.

A paid handler of an ``upto`` route sets the response header ``Settlement-Overrides: {"amount": "<atomic>"}``
(``settlement_overrides(response, amount)``); the paywall removes the header before the buyer sees the response
and settles that amount, at most the signed maximum (the offer's amount). Without the header the maximum is
settled. The header means nothing on other schemes (it is still removed).
"""

from __future__ import annotations

import json
from typing import Final

import msgspec
from aiohttp import web

from x402.facilitator.base import AnyRequirements
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
    amount = doc.get("amount") if isinstance(doc, dict) else None
    if not is_canonical_uint(amount):
        raise SettlementOverrideError('Settlement-Overrides needs {"amount": "<atomic units>"}')
    assert isinstance(amount, str)
    if int(amount) > int(requirements.amount):
        raise SettlementOverrideError(
            f"the settlement amount {amount} exceeds the signed maximum {requirements.amount}"
        )
    return msgspec.structs.replace(requirements, amount=amount)
