"""TEST DOUBLE: an in-memory chain and ChainAdapter for tests where the chain is not the point; never an entry point.

Payments are ed25519-signed authorizations (the payer's address is its public key in hex) checked for real, and
the ledger keeps balances, used nonces and landed transactions, so the adapter passes the same conformance suite
as the real chains (tests/conformance/). Tests register it with ``create_app(..., factories=fake_factories(...))``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chains.base import (
    ChainAdapter,
    Confirmation,
    PaymentContext,
    PaymentStatus,
    PreparedSettlement,
    ReplayKey,
    SettlementRejected,
    TxCheck,
    TxVerification,
    VerifyOutcome,
)
from chains.keys import KeyPair
from x402.errors import ChainUnavailable
from x402.wire import reasons
from x402.wire.models import PaymentRequirements, SupportedKind

if TYPE_CHECKING:
    from chains.registry import AdapterFactory

FAMILY = "fake"
NETWORK = "fake:1"
ASSET = "FAKEUSD"

# The fake's own reason codes (a test double: not part of the documented set in docs/reason-codes.md).
SIGNATURE_INVALID = "fake_signature_invalid"
AMOUNT_MISMATCH = "fake_amount_mismatch"
RECIPIENT_MISMATCH = "fake_recipient_mismatch"
ASSET_MISMATCH = "fake_asset_mismatch"
NETWORK_MISMATCH = "fake_network_mismatch"
EXPIRED = "fake_authorization_expired"
NONCE_USED = "fake_nonce_already_used"
TRANSACTION_FAILED = "fake_transaction_failed"
TRANSACTION_NOT_FOUND = "fake_transaction_not_found"
INSUFFICIENT_FUNDS = reasons.INSUFFICIENT_FUNDS

_FIELDS = ("from", "to", "asset", "network", "value", "nonce", "validBefore")


def signing_bytes(auth: Mapping[str, Any]) -> bytes:
    """The canonical bytes a payer signs: the authorization's fields as sorted compact JSON."""
    return json.dumps({k: auth[k] for k in _FIELDS}, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed fake payment authorization."""

    payer: str
    to: str
    asset: str
    network: str
    value: int
    nonce: str
    valid_before: int
    signature: bytes
    raw: Mapping[str, Any]


def parse(payload: Mapping[str, Any]) -> Authorization:
    """The authorization of a scheme payload; raises ValueError when it is malformed."""
    auth = payload.get("authorization")
    sig = payload.get("signature")
    if not isinstance(auth, dict) or not isinstance(sig, str) or any(k not in auth for k in _FIELDS):
        raise ValueError("payload needs authorization{" + ",".join(_FIELDS) + "} and signature")
    try:
        return Authorization(
            payer=str(auth["from"]),
            to=str(auth["to"]),
            asset=str(auth["asset"]),
            network=str(auth["network"]),
            value=int(str(auth["value"])),
            nonce=str(auth["nonce"]),
            valid_before=int(str(auth["validBefore"])),
            signature=bytes.fromhex(sig.removeprefix("0x")),
            raw=auth,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed authorization: {exc}") from None


def signature_ok(auth: Authorization) -> bool:
    """True when the payer's ed25519 key signed the authorization."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(auth.payer)).verify(auth.signature, signing_bytes(auth.raw))
    except (ValueError, InvalidSignature):
        return False
    return True


@dataclass(slots=True)
class FakeTx:
    """A transaction that landed on the fake ledger (``ok`` False: it failed and moved nothing)."""

    tx_id: str
    asset: str
    payer: str
    pay_to: str
    amount: int
    block: int
    ok: bool = True


@dataclass
class FakeLedger:
    """One in-memory chain: balances by (asset, owner), used nonces, landed transactions; ``up`` False is a dead RPC."""

    network: str = NETWORK
    up: bool = True
    now: Callable[[], float] = time.time
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    used: dict[tuple[str, str, str], str] = field(default_factory=dict)
    txs: dict[str, FakeTx] = field(default_factory=dict)
    block: int = 0
    calls: int = 0

    def mint(self, owner: str, amount: int, asset: str = ASSET) -> None:
        """Credit ``amount`` of ``asset`` to ``owner``."""
        self.balances[(asset, owner)] = self.balance(owner, asset) + amount

    def balance(self, owner: str, asset: str = ASSET) -> int:
        """``owner``'s balance of ``asset``."""
        return self.balances.get((asset, owner), 0)

    def _land(self, tx: FakeTx, nonce_key: tuple[str, str, str] | None) -> None:
        self.block += 1
        tx.block = self.block
        if tx.ok:
            self.balances[(tx.asset, tx.payer)] = self.balance(tx.payer, tx.asset) - tx.amount
            self.mint(tx.pay_to, tx.amount, tx.asset)
            if nonce_key is not None:
                self.used[nonce_key] = tx.tx_id
        self.txs[tx.tx_id] = tx

    def transfer(self, payer: str, pay_to: str, amount: int, asset: str = ASSET) -> str:
        """A plain transfer (no authorization) as a payer sends it; its transaction id."""
        if self.balance(payer, asset) < amount:
            raise ValueError("insufficient balance")
        tx = FakeTx("0x" + secrets.token_hex(32), asset, payer, pay_to, amount, 0)
        self._land(tx, None)
        return tx.tx_id

    def submit(self, tx_id: str, auth: Authorization) -> None:
        """Apply a settlement once; a second submission of the same transaction is a no-op."""
        if tx_id in self.txs:
            return
        key = (auth.asset, auth.payer, auth.nonce)
        ok = (
            signature_ok(auth)
            and key not in self.used
            and auth.valid_before > self.now()
            and self.balance(auth.payer, auth.asset) >= auth.value
        )
        self._land(FakeTx(tx_id, auth.asset, auth.payer, auth.to, auth.value, 0, ok), key)


class FakePayer:
    """A fake-chain payer key: signs authorizations; also a ``PaymentSigner`` for the payer client."""

    networks: Sequence[str] = ("fake:*",)

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self._key = key or Ed25519PrivateKey.generate()
        self._address = self._key.public_key().public_bytes_raw().hex()

    @property
    def address(self) -> str:
        """The payer address: its public key in hex."""
        return self._address

    def can_pay(self, requirements: PaymentRequirements) -> bool:
        """Exact payments on fake networks."""
        return requirements.scheme == "exact" and requirements.network.startswith(f"{FAMILY}:")

    async def create_payload(self, requirements: PaymentRequirements, x402_version: int) -> dict[str, Any]:
        """The scheme payload paying ``requirements``."""
        return self.sign(requirements)

    def sign(self, req: PaymentRequirements, *, signer: FakePayer | None = None, **changes: Any) -> dict[str, Any]:
        """A signed payload for ``req``; ``changes`` override authorization fields, ``signer`` forges the signature."""
        auth: dict[str, Any] = {
            "from": self.address,
            "to": req.pay_to,
            "asset": req.asset,
            "network": req.network,
            "value": str(req.amount),
            "nonce": "0x" + secrets.token_hex(32),
            "validBefore": str(int(time.time()) + req.max_timeout_seconds + 60),
        }
        auth.update({k: str(v) for k, v in changes.items()})
        sig = (signer or self)._key.sign(signing_bytes(auth))
        return {"authorization": auth, "signature": sig.hex()}


class FakeKeys:
    """The fake chain's wallet key kind (a ``chains.keys.KeyKind``): ed25519 keys, hex import, ``FakePayer`` signers."""

    name = FAMILY
    label = FAMILY
    aliases: Sequence[str] = ()

    def owns(self, network: str) -> bool:
        """Every ``fake:*`` network."""
        return network.startswith(f"{FAMILY}:")

    def generate(self) -> KeyPair:
        """A fresh key."""
        return self.imported(Ed25519PrivateKey.generate().private_bytes_raw().hex())

    def imported(self, text: str) -> KeyPair:
        """A 32-byte ed25519 seed as hex."""
        payer = FakePayer(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text)))
        return KeyPair(payer.address, bytes.fromhex(text))

    def can_pay(self, offer: PaymentRequirements) -> bool:
        """``exact`` offers."""
        return offer.scheme == "exact"

    def signer(self, secret: bytes) -> FakePayer:
        """A payer holding the key."""
        return FakePayer(Ed25519PrivateKey.from_private_bytes(secret))


class FakeAdapter(ChainAdapter):
    """The ChainAdapter of fake networks; each network has ledgers in failover order (a down one is skipped).

    It brings its wallet key kind (``wallet_key_kind``), so agent wallets create fake keys and pay on fake networks.
    """

    name = FAMILY

    def __init__(self, endpoints: Mapping[str, Sequence[FakeLedger]], *, signer: str = "fake-facilitator") -> None:
        self.endpoints = {net: list(ledgers) for net, ledgers in endpoints.items()}
        self.signer = signer
        self.closed = False

    @classmethod
    def serving(cls, *ledgers: FakeLedger) -> FakeAdapter:
        """An adapter with one endpoint per ledger's network."""
        return cls({ledger.network: [ledger] for ledger in ledgers})

    def _ledger(self, network: str) -> FakeLedger:
        for ledger in self.endpoints.get(network, []):
            if ledger.up:
                ledger.calls += 1
                return ledger
        raise ChainUnavailable("no fake ledger endpoint is up", network=network)

    def networks(self) -> Sequence[str]:
        """Networks with at least one endpoint."""
        return list(self.endpoints)

    def supported_kinds(self) -> list[SupportedKind]:
        """v2 exact on every network."""
        return [SupportedKind(x402_version=2, scheme="exact", network=n) for n in self.endpoints]

    def signers(self) -> dict[str, list[str]]:
        """The one facilitator signer."""
        return {f"{FAMILY}:*": [self.signer]}

    def _static(self, ctx: PaymentContext) -> Authorization | VerifyOutcome:
        req = ctx.requirements
        if req.scheme != "exact" or ctx.scheme != "exact":
            return VerifyOutcome.invalid(reasons.UNSUPPORTED_SCHEME, f"scheme {ctx.scheme!r} is not exact")
        if req.network not in self.endpoints:
            return VerifyOutcome.invalid(reasons.INVALID_NETWORK, f"network {req.network} is not served")
        try:
            auth = parse(ctx.payload)
            amount = int(req.amount)
        except ValueError as exc:
            return VerifyOutcome.invalid(reasons.INVALID_PAYLOAD, str(exc))
        accepted = ctx.accepted.network if ctx.accepted is not None else req.network
        if auth.network != req.network or ctx.network != req.network or accepted != req.network:
            return VerifyOutcome.invalid(NETWORK_MISMATCH, f"signed for {auth.network}", auth.payer)
        if not signature_ok(auth):
            return VerifyOutcome.invalid(SIGNATURE_INVALID, "signature does not verify under from", auth.payer)
        if auth.to != req.pay_to:
            return VerifyOutcome.invalid(RECIPIENT_MISMATCH, "authorization.to is not payTo", auth.payer)
        if auth.asset != req.asset:
            return VerifyOutcome.invalid(ASSET_MISMATCH, "authorization.asset is not the asset", auth.payer)
        if auth.value != amount:
            return VerifyOutcome.invalid(AMOUNT_MISMATCH, f"value {auth.value} != amount {amount}", auth.payer)
        return auth

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """Static checks, then the ledger's clock, nonces and balances (raises only when no ledger is up)."""
        auth = self._static(ctx)
        if isinstance(auth, VerifyOutcome):
            return auth
        ledger = self._ledger(ctx.requirements.network)
        if auth.valid_before <= ledger.now():
            return VerifyOutcome.invalid(EXPIRED, "validBefore has passed", auth.payer)
        if (auth.asset, auth.payer, auth.nonce) in ledger.used:
            return VerifyOutcome.invalid(NONCE_USED, "the nonce was already used", auth.payer)
        if ledger.balance(auth.payer, auth.asset) < auth.value:
            return VerifyOutcome.invalid(INSUFFICIENT_FUNDS, "balance below value", auth.payer)
        return VerifyOutcome(True, payer=auth.payer)

    def replay_key(self, ctx: PaymentContext) -> ReplayKey:
        """(network, asset, payer, nonce) of the authorization."""
        auth = parse(ctx.payload)
        return ReplayKey(ctx.requirements.network, auth.asset, auth.payer, auth.nonce)

    async def prepare_settlement(
        self, ctx: PaymentContext, *, nonce_floor: int | None = None, signer: str | None = None
    ) -> PreparedSettlement:
        """A deterministic settlement of the authorization; refused when it no longer verifies."""
        out = await self.verify(ctx)
        if not out.is_valid:
            raise SettlementRejected(out.reason or TRANSACTION_FAILED, out.message, out.payer)
        raw = json.dumps(dict(ctx.payload), sort_keys=True, separators=(",", ":")).encode()
        tx_id = "0x" + hashlib.sha256(raw).hexdigest()
        return PreparedSettlement(tx_id=tx_id, raw=raw, signer=self.signer, valid_until=parse(ctx.payload).valid_before)

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """Land the settlement on the first live ledger (a repeat is a no-op)."""
        self._ledger(network).submit(prepared.tx_id, parse(json.loads(prepared.raw)))

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, *, timeout: float) -> Confirmation:
        """The landed transaction's outcome, checked against the payment when ``ctx`` is given."""
        tx = self._ledger(network).txs.get(tx_id)
        if tx is None:
            return Confirmation("unknown")
        if not tx.ok:
            return Confirmation("failed", reason=TRANSACTION_FAILED, message="the settlement failed", block=tx.block)
        if ctx is not None:
            req = ctx.requirements
            if (tx.pay_to, tx.asset, tx.amount) != (req.pay_to, req.asset, int(req.amount)):
                return Confirmation("failed", reason=TRANSACTION_FAILED, message="the transfer does not match")
        return Confirmation("confirmed", amount=tx.amount, block=tx.block)

    async def verify_transaction(self, check: TxCheck) -> TxVerification:
        """A landed transfer to ``pay_to`` of at least ``min_amount`` of ``asset``."""
        ledger = self._ledger(check.network)
        tx = ledger.txs.get(check.tx_id)
        if tx is None:
            return TxVerification("invalid", reason=TRANSACTION_NOT_FOUND)
        if not tx.ok:
            return TxVerification("invalid", payer=tx.payer, reason=TRANSACTION_FAILED, block=tx.block)
        found = replace(
            TxVerification("verified"),
            amount=tx.amount,
            payer=tx.payer,
            confirmations=ledger.block - tx.block + 1,
            block=tx.block,
        )
        if tx.asset != check.asset:
            return replace(found, status="invalid", reason=ASSET_MISMATCH)
        if tx.pay_to != check.pay_to:
            return replace(found, status="invalid", reason=RECIPIENT_MISMATCH)
        if tx.amount < check.min_amount:
            return replace(found, status="invalid", reason=AMOUNT_MISMATCH)
        if found.confirmations < check.confirmations:
            return replace(found, status="pending")
        return found

    async def payment_status(
        self, network: str, payload: Mapping[str, Any], requirements: PaymentRequirements
    ) -> PaymentStatus:
        """Settled when its nonce is used, void once expired, otherwise pending."""
        ledger = self._ledger(network)
        auth = parse(payload)
        tx_id = ledger.used.get((auth.asset, auth.payer, auth.nonce))
        if tx_id is not None:
            return PaymentStatus("settled", transaction=tx_id)
        if auth.valid_before <= ledger.now():
            return PaymentStatus("void", message="expired unused")
        return PaymentStatus("pending")

    def wallet_key_kind(self) -> FakeKeys:
        """The key kind of agent wallets on fake networks (``chains.keys.KeyKindSource``)."""
        return FakeKeys()

    async def balance_of(self, network: str, asset: str, owner: str) -> int:
        """``owner``'s balance of ``asset`` on the first live ledger."""
        return self._ledger(network).balance(owner, asset)

    async def check_health(self) -> dict[str, bool]:
        """A network is healthy when one of its ledgers is up."""
        return {net: any(ledger.up for ledger in ledgers) for net, ledgers in self.endpoints.items()}

    async def close(self) -> None:
        """Nothing to release."""
        self.closed = True


def fake_factories(adapter: FakeAdapter) -> dict[str, AdapterFactory]:
    """Adapter factories for ``create_app`` that serve the configured ``fake:*`` networks with ``adapter``."""
    return {FAMILY: lambda options, nets: adapter}
