"""The payer's signing seam: one ``PaymentSigner`` per chain family (EVM today, Solana later)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from x402.wire.models import PaymentRequirements
from x402.wire.networks import matches


@runtime_checkable
class PaymentSigner(Protocol):
    """Signs the scheme payload that pays one offer."""

    #: CAIP-2 patterns this signer can pay on, e.g. ``("eip155:*",)``
    networks: Sequence[str]

    @property
    def address(self) -> str:
        """The payer address."""
        ...

    def can_pay(self, requirements: PaymentRequirements) -> bool:
        """True when this signer can sign for this offer (scheme, network, enough facts in ``extra``)."""
        ...

    async def create_payload(self, requirements: PaymentRequirements, x402_version: int) -> dict[str, Any]:
        """The scheme payload (e.g. ``{signature, authorization}``) for v2-shaped ``requirements``."""
        ...


def signer_for(signers: Sequence[PaymentSigner], requirements: PaymentRequirements) -> PaymentSigner | None:
    """The first signer whose network patterns cover the offer and that can pay it."""
    for signer in signers:
        if any(matches(p, requirements.network) for p in signer.networks) and signer.can_pay(requirements):
            return signer
    return None
