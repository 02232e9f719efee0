"""``Settlement-Overrides`` amounts (architecture.md §12.2): atomic units, a percentage of the signed maximum, or a
dollar price; never above the maximum; other schemes keep their amount."""

from __future__ import annotations

import msgspec
import pytest
from aiohttp import web

from x402.paywall.metering import (
    SETTLEMENT_OVERRIDES,
    SettlementOverrideError,
    settle_requirements,
    settlement_overrides,
)
from x402.wire.models import PaymentRequirements

UPTO = PaymentRequirements(
    scheme="upto",
    network="eip155:8453",
    amount="50000",
    asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",  # Base USDC, 6 decimals
    pay_to="0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    max_timeout_seconds=60,
    extra={"name": "USD Coin", "version": "2", "facilitatorAddress": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"},
)


@pytest.mark.parametrize(
    ("amount", "settled"),
    [("1234", "1234"), ("0", "0"), ("50000", "50000"), ("50%", "25000"), ("33.33%", "16665"), ("$0.01", "10000")],
)
def test_override_amounts(amount: str, settled: str) -> None:
    req = settle_requirements(UPTO, msgspec.json.encode({"amount": amount}).decode())
    assert isinstance(req, PaymentRequirements)
    assert req.amount == settled
    assert msgspec.structs.replace(req, amount=UPTO.amount) == UPTO  # nothing else changes


@pytest.mark.parametrize(
    "header",
    ['{"amount": "50001"}', '{"amount": "101%"}', '{"amount": "$1"}', '{"amount": "-1"}', '{"amount": 5}', "[]", "{"],
)
def test_bad_overrides_are_refused(header: str) -> None:
    with pytest.raises(SettlementOverrideError):
        settle_requirements(UPTO, header)


def test_exact_ignores_overrides_and_helper_sets_the_header() -> None:
    exact = msgspec.structs.replace(UPTO, scheme="exact")
    assert settle_requirements(exact, '{"amount": "1"}') is exact
    assert settle_requirements(UPTO, None) is UPTO
    response = web.Response()
    settlement_overrides(response, 42)
    assert response.headers[SETTLEMENT_OVERRIDES] == '{"amount": "42"}'
    with pytest.raises(SettlementOverrideError):
        settlement_overrides(response, -1)
