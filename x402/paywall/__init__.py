"""The aiohttp paywall: declare paid routes with ``Offer``/``PaidRoute`` (or ``@paid``) and mount ``Paywall``."""

from x402.paywall.challenge import EXPOSE_HEADERS, PAYMENT_REQUIRED_ERROR, Challenge, ChallengeCache
from x402.paywall.credits import (
    CHARGE,
    CREDITS_CHARGED,
    CREDITS_REMAINING,
    Charge,
    CreditConfig,
    CreditLedger,
    CustomerResolver,
    first_customer,
    header_customer,
    siwx_customer,
)
from x402.paywall.matching import payment_id, requirements_match
from x402.paywall.metering import SETTLEMENT_OVERRIDES, settlement_overrides
from x402.paywall.middleware import (
    NO_MATCH,
    PAYMENT,
    PAYWALL_STARTED,
    REPLAYED,
    SIGNED_IN,
    Paywall,
    StartHook,
    VerifiedPayment,
)
from x402.paywall.offers import CreditPrice, Offer, PaidRoute, paid, paid_route_of
from x402.paywall.siwx import MemorySiwxStore, SiwxConfig, SiwxStore

__all__ = [
    "CHARGE",
    "CREDITS_CHARGED",
    "CREDITS_REMAINING",
    "EXPOSE_HEADERS",
    "NO_MATCH",
    "PAYMENT",
    "PAYMENT_REQUIRED_ERROR",
    "PAYWALL_STARTED",
    "REPLAYED",
    "SETTLEMENT_OVERRIDES",
    "SIGNED_IN",
    "Challenge",
    "ChallengeCache",
    "Charge",
    "CreditConfig",
    "CreditLedger",
    "CreditPrice",
    "CustomerResolver",
    "MemorySiwxStore",
    "Offer",
    "PaidRoute",
    "Paywall",
    "SiwxConfig",
    "SiwxStore",
    "StartHook",
    "VerifiedPayment",
    "first_customer",
    "header_customer",
    "paid",
    "paid_route_of",
    "payment_id",
    "requirements_match",
    "settlement_overrides",
    "siwx_customer",
]
