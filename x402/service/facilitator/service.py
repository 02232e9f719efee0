"""The in-process facilitator: routes a payment to its chain adapter and settles it exactly once."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from chains.base import ChainAdapter, Confirmation, PaymentContext, SignerOutOfGas
from chains.registry import ChainRegistry
from x402 import tracing
from x402.errors import DependencyError, SignerBusy
from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.logs import get_logger
from x402.service.events.outbox import Event
from x402.service.facilitator.identifiers import Identifier, IdentifierStore, fingerprint_of, identifier_of
from x402.service.facilitator.journal import IdentifierTaken, Journal, JournalRow, payload_hash
from x402.service.facilitator.lanes import SignerLanes
from x402.service.metrics import Metrics
from x402.service.risk_gate import RiskGate
from x402.wire import reasons
from x402.wire.models import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
    normalize,
    parse_amount,
    resource_url,
)
from x402.wire.payment_identifier import KEY as PAYMENT_IDENTIFIER

#: The payload extension carrying an EIP-2612 permit of Permit2 (chains/evm/permit2.py reads it).
EIP2612_EXTENSION = "eip2612GasSponsoring"

log = get_logger("x402.facilitator")
#: The provider events of a settlement reaching its final status (written in the same transaction).
FinalEvents = Callable[[JournalRow], Sequence[Event]]


class Rejected(Exception):
    """A payment that cannot even be routed (unknown network, bad amount, mixed versions): a value to report."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Routed:
    """A payment with its adapter, its v2-shaped context and the network name to answer with."""

    adapter: ChainAdapter
    ctx: PaymentContext
    network: str
    payer_hint: str | None


@runtime_checkable
class BoundSigner(Protocol):
    """An adapter whose payments may name the signer that must settle them (EVM ``upto``)."""

    def settlement_signer(self, ctx: PaymentContext) -> str | None:
        """The signer address that must send this settlement, or None when any signer may."""
        ...


class ExtensionHandler(Protocol):
    """A facilitator-side payload extension (e.g. bazaar): sees each verify/settle outcome, must not block."""

    key: str

    def handle(
        self, op: str, payload: PaymentPayload, requirements: PaymentRequirements, ok: bool, amount: int | None
    ) -> dict[str, Any] | None:
        """Its ``EXTENSION-RESPONSES`` entry for this payment, or None when the payment does not use it."""
        ...


def _payer_hint(payload: Any) -> str | None:
    """``from`` of an EIP-3009 or a Permit2 authorization, as the payer spelled it."""
    for key in ("authorization", "permit2Authorization"):
        auth = payload.get(key) if isinstance(payload, dict) else None
        if isinstance(auth, dict) and isinstance(auth.get("from"), str):
            return str(auth["from"])
    return None


class FacilitatorService:
    """Verify and settle through chain adapters; the journal makes settlement exactly-once across processes."""

    def __init__(
        self,
        registry: ChainRegistry,
        journal: Journal,
        *,
        settle_timeout: float = 30.0,
        signer_wait: float | None = None,
        metrics: Metrics | None = None,
        extensions: list[str] | None = None,
        risk: RiskGate | None = None,
        extension_handlers: list[ExtensionHandler] | None = None,
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.settle_timeout = settle_timeout
        self.metrics = metrics
        self.extensions = list(extensions or [])
        self.extension_handlers = list(extension_handlers or [])
        self.risk = risk
        self.identifiers = IdentifierStore(journal.pool)
        self.lanes = SignerLanes(journal, metrics, signer_wait=signer_wait)

    # ------------------------------------------------------------------------------------ routing

    def route(
        self, payload: AnyPayload, requirements: AnyRequirements, *, phase: Literal["verify", "settle"] = "verify"
    ) -> Routed:
        """Normalise to v2 and find the adapter; raises Rejected for what no adapter could take."""
        try:
            p2, r2 = normalize(payload, requirements)
        except DependencyError:
            raise
        except Exception as exc:
            code = getattr(exc, "code", reasons.INVALID_PAYLOAD)
            raise Rejected(code, str(exc)) from None
        try:
            parse_amount(r2.amount)
        except Exception as exc:
            raise Rejected(reasons.INVALID_PAYMENT_REQUIREMENTS, str(exc)) from None
        adapter = self.registry.find(r2.network)
        if adapter is None:
            raise Rejected(reasons.INVALID_NETWORK, f"network {r2.network!r} is not supported by this facilitator")
        ctx = PaymentContext(
            x402_version=payload.x402_version,
            scheme=p2.accepted.scheme,
            network=r2.network,
            payload=p2.payload,
            requirements=r2,
            accepted=p2.accepted,
            extensions=p2.extensions if isinstance(p2.extensions, dict) else {},
            phase=phase,
        )
        return Routed(adapter, ctx, requirements.network, _payer_hint(p2.payload))

    def _count(self, op: str, network: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_payment(op, network, outcome)

    # ------------------------------------------------------------------------------------- verify

    async def verify(
        self, payload: AnyPayload, requirements: AnyRequirements, *, tenant_id: str | None = None
    ) -> VerifyResponse:
        """Verify a payment (architecture.md §6.1): every negative outcome is ``isValid: false`` with a reason.

        With a payment identifier whose purchase is already settled, the answer is that purchase's (valid).
        """
        if not tracing.enabled():  # the hot path: no span object, no attribute dict
            return await self._verify_outer(payload, requirements, tenant_id)
        with tracing.span("x402.verify", **{"x402.network": requirements.network, "x402.tenant": tenant_id}):
            return await self._verify_outer(payload, requirements, tenant_id)

    async def _verify_outer(
        self, payload: AnyPayload, requirements: AnyRequirements, tenant_id: str | None
    ) -> VerifyResponse:
        ident = await self._bind_identifier(payload, requirements, tenant_id)
        held = await self.journal.find_by_identifier(ident.tenant, ident.id) if ident is not None else None
        if held is not None and held.status == "confirmed" and self._payer_of(payload, requirements) == held.payer:
            self._count("verify", requirements.network, "replayed")
            resp = VerifyResponse(is_valid=True, payer=held.payer)
        else:
            resp = await self._verify(payload, requirements, tenant_id)
        ext = self._extension_responses("verify", payload, requirements, resp.is_valid, None)
        if ext:
            resp.extensions = {**_dict(resp.extensions), **ext}
        return resp

    def _payer_of(self, payload: AnyPayload, requirements: AnyRequirements) -> str | None:
        """The payer as the journal keys it (None when the payment cannot be routed or keyed)."""
        try:
            routed = self.route(payload, requirements)
            return routed.adapter.replay_key(routed.ctx).payer
        except Exception:
            return None

    async def _bind_identifier(
        self, payload: AnyPayload, requirements: AnyRequirements, tenant_id: str | None
    ) -> Identifier | None:
        """The payment-identifier of this payment, bound to its purchase (raises 400 / 409)."""
        ident = identifier_of(payload, requirements, tenant_id)
        if ident is not None:
            assert isinstance(requirements, PaymentRequirements)
            fp = fingerprint_of(ident, requirements, resource_url(payload, requirements))
            await self.identifiers.bind(ident, fp)
        return ident

    def _extension_responses(
        self, op: str, payload: AnyPayload, requirements: AnyRequirements, ok: bool, amount: str | None
    ) -> dict[str, Any]:
        """Run the extension handlers; their answers become ``extensions`` (and the EXTENSION-RESPONSES header)."""
        if not self.extension_handlers:
            return {}
        try:
            p2, r2 = normalize(payload, requirements)
        except Exception:
            return {}
        out: dict[str, Any] = {}
        for handler in self.extension_handlers:
            try:
                entry = handler.handle(op, p2, r2, ok, int(amount) if amount and amount.isdigit() else None)
            except Exception as exc:  # an extension must never fail a payment
                log.warning("extension_handler_failed", extension=handler.key, error=type(exc).__name__)
                continue
            if entry is not None:
                out[handler.key] = entry
        return out

    async def _verify(
        self, payload: AnyPayload, requirements: AnyRequirements, tenant_id: str | None
    ) -> VerifyResponse:
        try:
            routed = self.route(payload, requirements)
        except Rejected as rej:
            self._count("verify", requirements.network, rej.reason)
            return VerifyResponse(is_valid=False, invalid_reason=rej.reason, invalid_message=rej.message)
        outcome = await routed.adapter.verify(routed.ctx, simulate=True)
        self._count("verify", routed.ctx.network, "valid" if outcome.is_valid else (outcome.reason or "invalid"))
        resp = VerifyResponse(is_valid=outcome.is_valid)
        if outcome.payer:
            resp.payer = outcome.payer
        if not outcome.is_valid:
            resp.invalid_reason = outcome.reason or reasons.UNEXPECTED_VERIFY_ERROR
            if outcome.message:
                resp.invalid_message = outcome.message
        elif self.risk is not None:
            resp = await self.risk.verify(
                routed.ctx,
                resp,
                resource=resource_url(payload, requirements),
                payment_id=self._payment_id(routed),
                tenant_id=tenant_id,
            )
        return resp

    @staticmethod
    def _payment_id(routed: Routed) -> str | None:
        """The same id on verify and settle, so behaviour counters see each payment once."""
        try:
            key = routed.adapter.replay_key(routed.ctx)
        except Exception:
            return None
        return f"{key.network}:{key.asset}:{key.payer}:{key.nonce}"

    # ------------------------------------------------------------------------------------- settle

    def _failure(
        self, network: str, reason: str, message: str | None, payer: str | None, tx: str = ""
    ) -> SettleResponse:
        resp = SettleResponse(success=False, error_reason=reason, transaction=tx, network=network)
        if message:
            resp.error_message = message
        if payer:
            resp.payer = payer
        self._count("settle", network, reason)
        return resp

    def _success(self, row: JournalRow, network: str, outcome: str) -> SettleResponse:
        self._count("settle", network, outcome)
        # the payer as the payment spelled it (the journal keeps the lower-cased replay key)
        payer = _payer_hint(row.payload) or row.payer
        return SettleResponse(
            success=True, payer=payer, transaction=row.tx_id or "", network=network, amount=str(row.amount)
        )

    def _duplicate(self, row: JournalRow, network: str) -> SettleResponse:
        """A settled payment presented again: no second success, but its transaction so the retrier can find it."""
        return self._failure(
            network,
            reasons.DUPLICATE_SETTLEMENT,
            "this payment was already settled; transaction names its settlement",
            row.payer,
            row.tx_id or "",
        )

    def _from_row(self, row: JournalRow, network: str, payer: str | None) -> SettleResponse:
        """The answer recorded for a settlement that did not succeed (failed, or still in flight)."""
        payer = payer or row.payer
        if row.status == "failed":
            return self._failure(
                network, row.error_reason or reasons.UNEXPECTED_SETTLE_ERROR, row.error_message, payer, row.tx_id or ""
            )
        return self._failure(network, reasons.SETTLEMENT_PENDING, "settlement is in flight", payer, row.tx_id or "")

    async def settle(
        self, payload: AnyPayload, requirements: AnyRequirements, *, tenant_id: str | None = None
    ) -> SettleResponse:
        """Settle a payment at most once, and answer ``success: true`` once per payment.

        Later identical settles answer ``duplicate_settlement`` with the transaction; a settle under the same
        payment identifier (same tenant) gets the original success again.
        """
        with tracing.span("x402.settle", **{"x402.network": requirements.network, "x402.tenant": tenant_id}) as sp:
            resp = await self._settle(payload, requirements, tenant_id)
            tracing.annotate(sp, **{"x402.success": resp.success, "x402.tx_hash": resp.transaction or None})
        amount = resp.amount if isinstance(resp.amount, str) else None
        ext = self._extension_responses("settle", payload, requirements, resp.success, amount)
        if ext:
            resp.extensions = {**_dict(resp.extensions), **ext}
        return resp

    async def _settle(
        self, payload: AnyPayload, requirements: AnyRequirements, tenant_id: str | None
    ) -> SettleResponse:
        try:
            routed = self.route(payload, requirements, phase="settle")
        except Rejected as rej:
            return self._failure(requirements.network, rej.reason, rej.message, None)
        ident = await self._bind_identifier(payload, requirements, tenant_id)
        adapter, ctx, network = routed.adapter, routed.ctx, routed.network
        if tracing.enabled():
            with contextlib.suppress(Exception):  # a broken payload has no id; it is refused below
                tracing.annotate_current(**{"x402.payment_id": self._payment_id(routed)})
        try:
            key = adapter.replay_key(ctx)
        except Exception as exc:  # a payload too broken to key is an invalid payload
            return self._failure(network, reasons.INVALID_PAYLOAD, str(exc), routed.payer_hint)
        digest = payload_hash(ctx.x402_version, dict(ctx.payload), msgspec.to_builtins(ctx.requirements))
        if ident is not None:
            held = await self.journal.find_by_identifier(ident.tenant, ident.id)
            if held is not None:  # this purchase is (being) settled: answer from its settlement
                return await self._held(held, ctx, adapter, network, key.payer)
        existing = await self.journal.find(key)
        if existing is not None:
            return await self._existing(existing, digest, ctx, adapter, network, explicit=_made_under(existing, ident))
        with tracing.span("x402.verify", **{"x402.network": network}):
            outcome = await adapter.verify(ctx, simulate=False)
        if not outcome.is_valid:
            return self._failure(
                network, outcome.reason or reasons.UNEXPECTED_SETTLE_ERROR, outcome.message, outcome.payer
            )
        resource = resource_url(payload, requirements)
        if self.risk is not None:  # screened before any money moves
            with tracing.span("x402.risk", **{"x402.network": network}):
                assessment = await self.risk.assess(
                    ctx,
                    payer=outcome.payer,
                    resource=resource,
                    payment_id=self._payment_id(routed),
                    tenant_id=tenant_id,
                )
            if assessment.blocked:
                self._count("settle", network, "risk_blocked")
                return self.risk.blocked_settlement(network, assessment, outcome.payer)
        try:
            row_id = await self.journal.claim(
                key,
                digest=digest,
                pay_to=ctx.requirements.pay_to,
                amount=int(ctx.requirements.amount),
                x402_version=ctx.x402_version,
                payload=dict(ctx.payload),
                requirements=msgspec.to_builtins(ctx.requirements),
                identifier=(ident.tenant, ident.id) if ident is not None else None,
                event_tenant=tenant_id,
                extensions=_settle_extensions(ctx),
            )
        except IdentifierTaken:  # another authorization of this purchase was claimed meanwhile
            assert ident is not None
            held = await self.journal.find_by_identifier(ident.tenant, ident.id)
            if held is None:  # it failed in between: nothing was charged, the payer may simply retry
                return self._failure(network, reasons.SETTLEMENT_PENDING, "a settlement under this id just ended", None)
            return await self._held(held, ctx, adapter, network, key.payer)
        if row_id is None:  # another request claimed it between our look-up and our claim
            existing = await self.journal.find(key)
            assert existing is not None
            return await self._existing(existing, digest, ctx, adapter, network, explicit=_made_under(existing, ident))
        resp = await self._execute(
            row_id, ctx, adapter, network, outcome.payer, deliver=True, explicit=ident is not None
        )
        if self.risk is not None and resp.success:
            await self.risk.settled(ctx, resp, resource=resource, tenant_id=tenant_id)
        return resp

    async def _held(
        self, row: JournalRow, ctx: PaymentContext, adapter: ChainAdapter, network: str, payer: str
    ) -> SettleResponse:
        """Answer a settle under a payment identifier from the settlement already made under that id.

        Only the payer of that settlement gets its success again; anyone else presenting the id gets a duplicate.
        """
        if payer != row.payer:
            return self._duplicate(row, network)
        if row.payload_hash != payload_hash(ctx.x402_version, dict(ctx.payload), msgspec.to_builtins(ctx.requirements)):
            ctx = context_from_row(row)  # another authorization of the same purchase: confirm what was sent
        return await self._existing(row, row.payload_hash, ctx, adapter, network, explicit=True)

    async def _existing(
        self,
        row: JournalRow,
        digest: bytes,
        ctx: PaymentContext,
        adapter: ChainAdapter,
        network: str,
        *,
        explicit: bool = False,
    ) -> SettleResponse:
        """Answer a payment the journal already holds (``explicit``: a retry under its payment identifier).

        One plain settle answers success: the first that sees the row confirmed takes ``success_delivered``
        atomically; every later one gets ``duplicate_settlement`` with the transaction. Explicit retries get the
        original success every time.
        """
        if row.payload_hash != digest:
            return self._failure(
                network, reasons.DUPLICATE_SETTLEMENT, "this authorization was already settled", row.payer, ""
            )
        if row.status in ("claimed", "submitted"):
            waited = await self.journal.wait_settled(row.id, self.settle_timeout)
            row = waited or row
        if row.status == "pending" and row.tx_id:
            conf = await adapter.confirm(ctx, ctx.network, row.tx_id, timeout=min(self.settle_timeout, 5.0))
            if conf.status == "confirmed":
                delivered = await self.journal.confirm_and_deliver(row.id)
                row = await self.journal.get(row.id) or row
                if delivered or explicit:
                    return self._success(row, network, "success" if delivered else "replayed")
                return self._duplicate(row, network)
            await self._record(row.id, conf)
            row = await self.journal.get(row.id) or row
        if row.status == "confirmed":
            if await self.journal.deliver(row.id):
                return self._success(row, network, "success")
            return self._success(row, network, "replayed") if explicit else self._duplicate(row, network)
        return self._from_row(row, network, None)

    async def _execute(
        self,
        row_id: int,
        ctx: PaymentContext,
        adapter: ChainAdapter,
        network: str,
        payer: str | None,
        *,
        deliver: bool = False,
        explicit: bool = False,
        events: FinalEvents | None = None,
    ) -> SettleResponse:
        """Sign, send and confirm a claimed settlement (``events``: written with its final status, for the
        reconciler, whose outcomes no request answers)."""
        if ctx.requirements.scheme == "upto" and int(ctx.requirements.amount) == 0:
            return await self._settle_nothing(
                row_id, ctx, network, payer, deliver=deliver, explicit=explicit, events=events
            )
        started = time.perf_counter()
        tried: set[str] = set()
        required = adapter.settlement_signer(ctx) if isinstance(adapter, BoundSigner) else None
        while True:
            # round-robin over the network's signers; one out of gas hands the payment to the next one. A payment
            # bound to one signer (an upto witness names the facilitator) has no other to fall back on.
            signer = required if required is not None else self.lanes.pick(adapter, ctx.network, tried)
            try:
                with tracing.span("x402.settle.prepare", **{"x402.network": network}):
                    prepared = await self.lanes.reserve(row_id, ctx, adapter, signer)
                log.info("settle_submitted", tx=prepared.tx_id, network=ctx.network, settlement_id=row_id)
            except SignerOutOfGas as exc:
                if required is None and await self._out_of_gas(exc, row_id, adapter, ctx.network, tried, signer):
                    continue
                raise
            except SignerBusy:
                # the lane never freed: nothing was signed or sent, so the claim is dropped and the same payment may
                # be presented again once the signer has room (the 503 says "retry", and a retry can succeed)
                await self.journal.forget_unsent(row_id)
                raise
            except DependencyError:
                await self.journal.mark(
                    row_id, "failed", reasons.UNEXPECTED_SETTLE_ERROR, "chain unavailable before send", events=events
                )
                raise
            except Exception as exc:
                reason = getattr(exc, "reason", None) or reasons.UNEXPECTED_SETTLE_ERROR
                message = getattr(exc, "message", None) or str(exc)
                log.warning("settle_prepare_failed", reason=reason, network=ctx.network, error=type(exc).__name__)
                await self.journal.mark(row_id, "failed", reason, message, events=events)
                return self._failure(network, reason, message, payer)
            try:
                with tracing.span("x402.settle.broadcast", **{"x402.network": network, "x402.tx_hash": prepared.tx_id}):
                    prepared = await self.lanes.send(row_id, ctx, adapter, prepared)
            except SignerOutOfGas as exc:
                if await self._out_of_gas(exc, row_id, adapter, ctx.network, tried, signer):
                    continue
                raise
            except DependencyError as exc:
                # the transaction is recorded; the reconciler will resend it (same signed bytes, same hash)
                log.warning("settle_broadcast_deferred", tx=prepared.tx_id, error=exc.code)
                return self._failure(network, reasons.SETTLEMENT_PENDING, "broadcast deferred", payer, prepared.tx_id)
            break
        with tracing.span("x402.settle.receipt", **{"x402.network": network, "x402.tx_hash": prepared.tx_id}) as sp:
            conf = await adapter.confirm(ctx, ctx.network, prepared.tx_id, timeout=self.settle_timeout)
            tracing.annotate(sp, **{"x402.status": conf.status})
        with tracing.span("x402.record.write", **{"x402.network": network, "x402.settlement_id": row_id}):
            delivered = await self._record(row_id, conf, deliver=deliver, events=events)
        log.info(
            "settle_result",
            tx=prepared.tx_id,
            status=conf.status,
            reason=conf.reason,
            ms=round((time.perf_counter() - started) * 1000, 1),
            settlement_id=row_id,
        )
        if conf.status == "confirmed":
            if deliver and not delivered and not explicit:  # a retry saw the confirmation first and answered it
                row = await self.journal.get(row_id)
                assert row is not None
                return self._duplicate(row, network)
            self._count("settle", network, "success")
            resp = SettleResponse(success=True, transaction=prepared.tx_id, network=network)
            if payer:
                resp.payer = payer
            resp.amount = str(conf.amount if conf.amount is not None else ctx.requirements.amount)
            return resp
        if conf.status == "failed":
            return self._failure(
                network, conf.reason or reasons.UNEXPECTED_SETTLE_ERROR, conf.message, payer, prepared.tx_id
            )
        return self._failure(network, reasons.SETTLEMENT_PENDING, "not confirmed yet", payer, prepared.tx_id)

    async def _settle_nothing(
        self,
        row_id: int,
        ctx: PaymentContext,
        network: str,
        payer: str | None,
        *,
        deliver: bool,
        explicit: bool,
        events: FinalEvents | None = None,
    ) -> SettleResponse:
        """An ``upto`` settled for 0: no transaction; the journal row is confirmed so the authorization cannot be
        settled again (architecture.md §12.2)."""
        delivered = await self._record(row_id, Confirmation("confirmed", amount=0), deliver=deliver, events=events)
        if deliver and not delivered and not explicit:
            row = await self.journal.get(row_id)
            assert row is not None
            return self._duplicate(row, network)
        self._count("settle", network, "success")
        log.info("settle_result", status="confirmed", amount=0, network=ctx.network, payment_id=row_id)
        resp = SettleResponse(success=True, transaction="", network=network, amount="0")
        if payer:
            resp.payer = payer
        return resp

    async def _record(
        self, row_id: int, conf: Confirmation, *, deliver: bool = False, events: FinalEvents | None = None
    ) -> bool:
        """Record a confirmation; with ``deliver`` also take the row's success answer (True when taken)."""
        if conf.status == "confirmed":
            if deliver:
                return await self.journal.confirm_and_deliver(row_id)
            await self.journal.mark(row_id, "confirmed", events=events)
        elif conf.status == "failed":
            await self.journal.mark(row_id, "failed", conf.reason, conf.message, events=events)
        elif conf.status == "pending":
            await self.journal.mark(row_id, "pending")
        return False

    async def _out_of_gas(
        self, exc: SignerOutOfGas, row_id: int, adapter: ChainAdapter, network: str, tried: set[str], signer: str
    ) -> bool:
        """Count it; True when another signer may try, else the unsent claim is dropped (the payer may retry)."""
        self.lanes.out_of_gas(network, exc.signer)
        self._count("settle", network, SignerOutOfGas.code)
        tried.add(signer)
        if self.lanes.any_left(adapter, network, tried):
            return True
        await self.journal.forget_unsent(row_id)
        return False

    async def supported(self) -> SupportedResponse:
        """Kinds and signers of every configured adapter, and the extensions this facilitator implements."""
        extensions = list(self.extensions)
        if PAYMENT_IDENTIFIER not in extensions:
            extensions.append(PAYMENT_IDENTIFIER)
        return self.registry.supported(extensions)


def _made_under(row: JournalRow, ident: Identifier | None) -> bool:
    """True when the journal row was settled under this payment identifier (an explicit retry)."""
    return ident is not None and row.payment_identifier == ident.id and row.id_tenant == ident.tenant


def context_from_row(row: JournalRow) -> PaymentContext:
    """Rebuild a payment's context from its journal row (for the reconciler): always a settlement."""
    req = msgspec.convert(row.requirements, PaymentRequirements)
    return PaymentContext(
        x402_version=row.x402_version,
        scheme=req.scheme,
        network=row.network,
        payload=row.payload,
        requirements=req,
        accepted=req,
        extensions=row.extensions,
        phase="settle",
    )


def _settle_extensions(ctx: PaymentContext) -> dict[str, Any]:
    """The payload extensions a later (re)send of this settlement needs: the EIP-2612 permit of Permit2."""
    keep = (EIP2612_EXTENSION,)
    return {k: v for k, v in ctx.extensions.items() if k in keep}


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
