"""A payment the client sent without getting a receipt: unknown until the chain shows it settled or void."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from x402.errors import X402Error
from x402.wire.models import PaymentRequirements

if TYPE_CHECKING:
    from x402.client.client import PaidResponse


class PaymentState(Protocol):
    """The chain's answer (``chains.base.PaymentStatus`` has this shape)."""

    @property
    def state(self) -> str:
        """``settled``, ``pending`` or ``void``."""
        ...

    @property
    def transaction(self) -> str | None:
        """The settling transaction, when known."""
        ...


class StatusSource(Protocol):
    """Anything that can ask the chain about a signed payment: the chain adapters (``EvmAdapter``, ...) are."""

    async def payment_status(
        self, network: str, payload: Mapping[str, Any], requirements: PaymentRequirements
    ) -> PaymentState:
        """settled / pending / void for this scheme payload."""
        ...


@dataclass(frozen=True, slots=True)
class PendingPayment:
    """What was sent: enough to find the payment on-chain (network, payer, nonce) or to re-send the same header."""

    purchase: str
    method: str
    url: str
    offer: PaymentRequirements
    x402_version: int
    payload: Mapping[str, Any]
    header: tuple[str, str]
    payer: str
    reason: str
    status: int | None = None

    @property
    def network(self) -> str:
        """CAIP-2 network of the payment."""
        return self.offer.network

    @property
    def nonce(self) -> str | None:
        """The EIP-3009 (or Permit2) nonce (None for payments that have none, e.g. Solana)."""
        auth = self.payload.get("authorization") or self.payload.get("permit2Authorization")
        nonce = auth.get("nonce") if isinstance(auth, Mapping) else None
        return nonce if isinstance(nonce, str) else None

    def to_json(self) -> dict[str, Any]:
        """The public facts (no signature)."""
        out: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "network": self.network,
            "asset": self.offer.asset,
            "amount": self.offer.amount,
            "payTo": self.offer.pay_to,
            "payer": self.payer,
            "reason": self.reason,
        }
        if self.nonce is not None:
            out["nonce"] = self.nonce
        return out


class PaymentPending(X402Error):
    """The payment went out but no receipt came back: it may have settled, so it is never signed again."""

    status = 202
    code = "payment_pending"
    title = "Payment pending"

    def __init__(self, detail: str, pending: PendingPayment, response: PaidResponse | None = None) -> None:
        super().__init__(detail, payment=pending.to_json())
        self.pending = pending
        self.response = response


def purchase_key(method: str, url: str, kw: Mapping[str, Any]) -> str:
    """Same purchase = same method, URL and body (``data`` bytes/str or ``json``); headers are ignored."""
    h = hashlib.sha256(f"{method.upper()}\n{url}\n".encode())
    if kw.get("json") is not None:
        h.update(json.dumps(kw["json"], sort_keys=True, separators=(",", ":")).encode())
    data = kw.get("data")
    if isinstance(data, str):
        h.update(data.encode())
    elif isinstance(data, bytes | bytearray):
        h.update(bytes(data))
    elif data is not None:
        h.update(repr(data).encode())
    return h.hexdigest()
