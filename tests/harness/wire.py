"""Well-formed x402 documents for tests: a Base USDC requirement nobody configured, and a signed v2 payment of
any chain (its scheme payload signed by tests/harness/evm.py or tests/harness/fake.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from x402.wire.models import PaymentPayload, PaymentRequirements, ResourceInfo

UNCONFIGURED_REQUIREMENTS: dict[str, Any] = {
    "scheme": "exact",
    "network": "eip155:8453",
    "amount": "10000",
    "asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "maxTimeoutSeconds": 60,
    "extra": {"name": "USD Coin", "version": "2"},
}


@dataclass(frozen=True)
class Payment:
    """A signed v2 payment and the requirements it pays."""

    payload: PaymentPayload
    requirements: PaymentRequirements
    payer: str

    def body(self) -> dict[str, Any]:
        """The facilitator request body."""
        return {
            "x402Version": 2,
            "paymentPayload": msgspec.to_builtins(self.payload),
            "paymentRequirements": msgspec.to_builtins(self.requirements),
        }


def payment_of(req: PaymentRequirements, scheme_payload: dict[str, Any], payer: str) -> Payment:
    """The v2 payment of ``req`` carrying ``scheme_payload`` (signed by ``payer``) for a test resource."""
    resource = ResourceInfo(url="http://127.0.0.1/paid", description="test", mime_type="application/json")
    return Payment(PaymentPayload(resource=resource, accepted=req, payload=scheme_payload), req, payer)
