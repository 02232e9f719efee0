"""What a chain supplies to the adapter conformance suite: the ChainKit protocol and the shared fault kinds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from chains.base import ChainAdapter, PaymentContext
from x402.wire.models import PaymentPayload, PaymentRequirements, ResourceInfo

#: Faults every adapter must reject at verify, each with the reason code its kit declares.
Fault = Literal[
    "wrong_amount",  # the payment moves another amount than required
    "wrong_pay_to",  # it pays someone other than payTo
    "wrong_asset",  # it pays in another asset (token, mint) than required
    "wrong_network",  # it was made for another network than required
    "expired",  # its validity window (validBefore, blockhash) has passed
    "bad_signature",  # the payer's signature does not verify
    "insufficient_balance",  # the payer cannot cover the amount
]
FAULTS: tuple[Fault, ...] = (
    "wrong_amount",
    "wrong_pay_to",
    "wrong_asset",
    "wrong_network",
    "expired",
    "bad_signature",
    "insufficient_balance",
)


@dataclass(frozen=True)
class KitPayment:
    """A valid signed payment of ``amount`` from ``payer`` to ``pay_to`` as the facilitator hands it to adapters."""

    ctx: PaymentContext
    payer: str
    pay_to: str
    amount: int

    def wire(self) -> tuple[PaymentPayload, PaymentRequirements]:
        """The payment as /settle receives it."""
        accepted = self.ctx.accepted or self.ctx.requirements
        resource = ResourceInfo(url="http://127.0.0.1/paid", description="conformance", mime_type="text/plain")
        return PaymentPayload(resource=resource, accepted=accepted, payload=dict(self.ctx.payload)), (
            self.ctx.requirements
        )


class ChainKit(Protocol):
    """A chain's fixtures for the suite: payments valid and faulty, balances, plain transfers, failover adapters."""

    #: the adapter under test, serving ``network`` with a facilitator signer able to settle
    adapter: ChainAdapter
    network: str
    #: the reason code this adapter gives for each shared fault (a fault left out does not apply to the chain)
    rejections: Mapping[Fault, str]
    #: the reason code of verifying a payment that has already settled (replay, nonce used)
    replay_reason: str
    #: True when every reason code is one of the documented set (x402/wire/reasons.py, docs/reason-codes.md)
    documented_reasons: bool
    #: a transaction id of the chain's format that no transaction has
    unknown_tx_id: str

    async def payment(self) -> KitPayment:
        """A fresh valid payment by a funded payer to the kit's payTo (a new nonce each call)."""
        ...

    async def faulty(self, fault: Fault) -> PaymentContext:
        """A payment with exactly one fault (the kit may change chain state, e.g. expire a blockhash)."""
        ...

    async def balance(self, owner: str) -> int:
        """``owner``'s balance of the kit's asset, read from the chain itself (not through the adapter)."""
        ...

    async def transfer(self, amount: int) -> tuple[str, str]:
        """A plain on-chain transfer of ``amount`` from a funded payer to payTo, landed: (transaction id, payer)."""
        ...

    def new_address(self) -> str:
        """A fresh account address of the chain (nobody pays it)."""
        ...

    def asset(self) -> str:
        """The kit's asset."""
        ...

    async def failover_adapter(self, *, alive: bool) -> ChainAdapter:
        """A new adapter on the same chain whose first RPC URL is dead; with ``alive`` False every URL is dead."""
        ...
