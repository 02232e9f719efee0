"""The facilitator seam: in-process or remote over HTTP, the same interface."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from x402.wire.models import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
)

AnyPayload = PaymentPayload | PaymentPayloadV1
AnyRequirements = PaymentRequirements | PaymentRequirementsV1


@runtime_checkable
class Facilitator(Protocol):
    """Verifies and settles x402 payments (architecture.md §6). Negative results are values, not exceptions."""

    async def verify(self, payload: AnyPayload, requirements: AnyRequirements) -> VerifyResponse:
        """Check a payment without moving money."""
        ...

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        """Move the money (at most once per payment) and report the transaction."""
        ...

    async def supported(self) -> SupportedResponse:
        """The kinds, extensions and signers this facilitator offers."""
        ...
