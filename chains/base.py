"""The seam between the service and a chain: the ChainAdapter protocol and the values that cross it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from x402.errors import ChainRejected
from x402.wire.models import PaymentRequirements, SupportedKind


@dataclass(frozen=True, slots=True)
class PaymentContext:
    """One payment, normalised to the v2 shape (v1 payloads are converted before they get here)."""

    x402_version: int
    scheme: str
    network: str
    payload: Mapping[str, Any]
    requirements: PaymentRequirements
    accepted: PaymentRequirements | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    #: "verify", or "settle" when the facilitator checks a payment it is about to settle (for ``upto`` the
    #: requirements' amount is then the actual amount, at most the signed maximum).
    phase: Literal["verify", "settle"] = "verify"


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """Result of verifying a payment: invalid is a value, not an exception."""

    is_valid: bool
    payer: str | None = None
    reason: str | None = None
    message: str | None = None
    extra: Mapping[str, Any] | None = None

    @classmethod
    def invalid(cls, reason: str, message: str | None = None, payer: str | None = None) -> VerifyOutcome:
        """An invalid outcome with its reason code."""
        return cls(False, payer=payer, reason=reason, message=message)


@dataclass(frozen=True, slots=True)
class ReplayKey:
    """What makes a payment unique on its chain (EVM: network, asset, payer, nonce)."""

    network: str
    asset: str
    payer: str
    nonce: str


@dataclass(frozen=True, slots=True)
class PreparedSettlement:
    """A signed settlement transaction, ready to broadcast; its id is known before it is sent."""

    tx_id: str
    raw: bytes
    signer: str
    signer_nonce: int | None = None
    valid_until: int | None = None


ConfirmationStatus = Literal["confirmed", "failed", "pending", "unknown"]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the chain says about a broadcast settlement."""

    status: ConfirmationStatus
    reason: str | None = None
    message: str | None = None
    amount: int | None = None
    block: int | None = None


@dataclass(frozen=True, slots=True)
class TxCheck:
    """A request to verify a plain on-chain payment by its transaction id."""

    network: str
    tx_id: str
    pay_to: str
    asset: str
    min_amount: int
    confirmations: int = 1


@dataclass(frozen=True, slots=True)
class TxVerification:
    """The answer to a TxCheck; ``status`` is verified, pending or invalid."""

    status: Literal["verified", "pending", "invalid"]
    amount: int = 0
    payer: str | None = None
    confirmations: int = 0
    reason: str | None = None
    block: int | None = None


PaymentState = Literal["settled", "pending", "void"]


@dataclass(frozen=True, slots=True)
class PaymentStatus:
    """What the chain says about a payment a payer signed and handed out.

    ``settled``: it moved the money (``transaction`` when found); ``void``: it can never settle any more (EVM:
    unused and past ``validBefore`` in chain time; Solana: not landed and its blockhash expired); ``pending``:
    it may still settle, ask again later.
    """

    state: PaymentState
    transaction: str | None = None
    message: str | None = None


@runtime_checkable
class PaymentStatusSource(Protocol):
    """Answers whether a signed payment settled; the chain adapters implement it for the payers' reconcilers."""

    async def payment_status(
        self, network: str, payload: Mapping[str, Any], requirements: PaymentRequirements
    ) -> PaymentStatus:
        """The state of the payment whose scheme ``payload`` paid ``requirements``; raises only for RPC trouble."""
        ...


class SettlementRejected(Exception):
    """prepare_settlement found the payment no longer settleable (e.g. its simulation reverts); a reason code."""

    def __init__(self, reason: str, message: str | None = None, payer: str | None = None) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message
        self.payer = payer


class NonceTooLow(ChainRejected):
    """broadcast: the signer nonce of a prepared transaction was used by another transaction; prepare it again."""

    code = "nonce_too_low"


class Underpriced(ChainRejected):
    """broadcast: the node refuses the transaction's fees (below the base fee, or too low to replace); bump them."""

    code = "transaction_underpriced"


class SignerOutOfGas(ChainRejected):
    """The facilitator's signer cannot pay the gas of a settlement (its native balance is too low): 503."""

    status = 503
    code = "signer_out_of_gas"
    title = "Facilitator signer out of gas"

    def __init__(self, detail: str | None = None, *, network: str, signer: str, **extra: Any) -> None:
        super().__init__(detail, network=network, signer=signer, **extra)
        self.dependency = f"signer:{network}"
        self.extra["dependency"] = self.dependency
        self.signer = signer


@dataclass(frozen=True, slots=True)
class LaneState:
    """A signer's nonce lane as the node sees it."""

    mined: int  # eth_getTransactionCount "latest": every nonce below is consumed on chain
    pending: int  # eth_getTransactionCount "pending": the first nonce the node holds no transaction for
    chain_time: int  # timestamp of the latest block (authorizations expire by chain time)


@runtime_checkable
class ChainAdapter(Protocol):
    """A chain family plug-in: verifies, settles and inspects payments on its networks."""

    name: str

    def networks(self) -> Sequence[str]:
        """CAIP-2 ids this adapter instance serves."""
        ...

    def supported_kinds(self) -> list[SupportedKind]:
        """The (version, scheme, network) kinds it can verify and settle."""
        ...

    def signers(self) -> dict[str, list[str]]:
        """Facilitator signer addresses by CAIP-2 pattern."""
        ...

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """Check a payment; never raises for an invalid payment, only for a broken dependency."""
        ...

    def replay_key(self, ctx: PaymentContext) -> ReplayKey:
        """The unique key of this payment for the replay ledger."""
        ...

    async def prepare_settlement(
        self, ctx: PaymentContext, *, nonce_floor: int | None = None, signer: str | None = None
    ) -> PreparedSettlement:
        """Build and sign the settlement transaction (no broadcast); ``signer`` picks one of ``signers()``."""
        ...

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """Send a prepared transaction; sending the same one twice is harmless."""
        ...

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, *, timeout: float) -> Confirmation:
        """Wait up to ``timeout`` for the transaction's outcome and check it moved the payment."""
        ...

    async def verify_transaction(self, check: TxCheck) -> TxVerification:
        """Verify a plain on-chain transfer by transaction id."""
        ...

    async def check_health(self) -> dict[str, bool]:
        """Per-network RPC reachability."""
        ...

    async def close(self) -> None:
        """Release clients and sessions."""
        ...


@runtime_checkable
class RpcHealth(Protocol):
    """An adapter that can show its RPC endpoints' circuit breakers (for saturation metrics)."""

    def rpc_endpoints(self) -> list[tuple[str, str, str]]:
        """``(network, endpoint, state)`` per RPC URL; ``endpoint`` is host[:port] only (paths may hold API keys)."""
        ...


@runtime_checkable
class GasBalance(Protocol):
    """An adapter whose signers pay gas in the chain's native coin."""

    async def gas_balance(self, network: str, signer: str) -> int:
        """The signer's native balance in atomic units (wei)."""
        ...


@runtime_checkable
class NonceLanes(ChainAdapter, Protocol):
    """An account-nonce chain adapter (EVM) with what it takes to leave no reserved signer nonce unused on chain."""

    async def lane_state(self, network: str, signer: str) -> LaneState:
        """The signer's mined and pending nonces and the chain's time."""
        ...

    async def tx_known(self, network: str, tx_id: str) -> bool:
        """True when the node knows the transaction (in its pool or mined)."""
        ...

    async def prepare_fill(
        self, network: str, signer: str, nonce: int, *, above: bytes | None = None
    ) -> PreparedSettlement:
        """A signed zero-value self-transfer at ``nonce`` (fees above those of the signed tx ``above``, if given)."""
        ...

    async def prepare_bump(self, network: str, raw: bytes) -> PreparedSettlement:
        """The same signed transaction (same nonce, same call) re-signed with fees a node takes as a replacement."""
        ...


class SettlementDraft(Protocol):
    """A settlement built and checked (gas estimate, fees, funds) but not signed: only the nonce is missing."""

    def sign(self, nonce: int) -> PreparedSettlement:
        """Sign at ``nonce`` (CPU only: no RPC, so a signer lane's lock is held as briefly as possible)."""
        ...


@runtime_checkable
class DraftsSettlements(Protocol):
    """An account-nonce adapter that does a settlement's RPC work before the signer's nonce is taken."""

    async def draft_settlement(self, ctx: PaymentContext, signer: str) -> SettlementDraft | None:
        """The unsigned settlement from ``signer``; None when its preparation needs the nonce (then
        ``prepare_settlement`` runs under the lane's lock). Raises like ``prepare_settlement``."""
        ...


@runtime_checkable
class DeclaresExtensions(Protocol):
    """An adapter that implements payload extensions (``/supported`` lists their keys)."""

    def extension_keys(self) -> list[str]:
        """Extension keys this adapter honours in payment payloads."""
        ...


def endpoint_label(url: str) -> str:
    """host[:port] of an RPC URL: never its path or query, which may carry a provider's API key."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host
