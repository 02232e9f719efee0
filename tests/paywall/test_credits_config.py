"""Declaring credit prices: bad prices and routes fail at declaration or start-up, never per request."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from chains import fake
from x402.errors import ConfigError
from x402.paywall import CreditConfig, CreditPrice, Offer, PaidRoute, Paywall, header_customer

OFFER = Offer(amount=1, asset=fake.ASSET, network=fake.NETWORK, pay_to="fake-pay-to")


@pytest.mark.parametrize(
    "kw",
    [
        {},  # neither credits nor meter
        {"credits": 1, "meter": "tokens"},
        {"credits": 0},
        {"credits": True},
        {"meter": "Tokens!"},
        {"meter": "tokens", "units": 0},
        {"credits": 1, "mode": "x402"},
    ],
)
def test_bad_prices_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        CreditPrice(**kw)


def test_routes_need_offers_unless_credits_only() -> None:
    PaidRoute((), credits=CreditPrice(credits=1, mode="credits"))
    with pytest.raises(ConfigError, match="at least one Offer"):
        PaidRoute((), credits=CreditPrice(credits=1))  # credits-then-x402 needs something to pay
    with pytest.raises(ConfigError, match="takes no offers"):
        PaidRoute((OFFER,), credits=CreditPrice(credits=1, mode="credits"))

    async def nobody(_: str) -> str | None:
        return None

    with pytest.raises(ConfigError):
        CreditConfig(ledger=None, customer=header_customer(nobody), refund_status=200)  # type: ignore[arg-type]


async def test_a_credit_route_without_a_credit_config_fails_at_start() -> None:
    paywall = Paywall(None, routes={("GET", "/r"): PaidRoute((), credits=CreditPrice(credits=1, mode="credits"))})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="credits=CreditConfig"):
        await paywall.start(web.Application())
