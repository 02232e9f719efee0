"""The risk stage in the payment path: what the facilitator calls around verify and settle.

``/verify`` gets the assessment under ``extensions["risk"]`` (official clients ignore unknown extensions), and a
``block`` turns the answer into ``isValid: false, invalidReason: risk_blocked``. ``/settle`` screens before any
money moves (blocked: ``success: false, errorReason: risk_blocked``) and teaches the baselines after a success.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from chains.base import PaymentContext
from risk.engine import RiskEngine
from risk.model import RISK_BLOCKED, RiskAssessment, RiskContext
from x402.wire.models import SettleResponse, VerifyResponse


def risk_context(
    payment: PaymentContext,
    *,
    payer: str | None,
    resource: str = "",
    payment_id: str | None = None,
    tenant_id: str | None = None,
) -> RiskContext:
    """The risk view of a routed payment (what FacilitatorService has after the adapter's verify)."""
    req = payment.requirements
    try:
        amount = int(req.amount)
    except (TypeError, ValueError):
        amount = 0
    extra: dict[str, Any] = {"extensions": dict(payment.extensions)}
    if isinstance(req.extra, dict):
        extra["requirements_extra"] = req.extra
    return RiskContext(
        network=payment.network,
        asset=req.asset,
        payer=payer or "",
        pay_to=req.pay_to,
        amount=amount,
        resource=resource,
        tenant_id=tenant_id,
        payment_id=payment_id,
        scheme=payment.scheme,
        payload=payment.payload,
        extra=extra,
    )


class TrustOf(Protocol):
    """The stored trust score of a payer address (x402/service/trust), or None."""

    async def __call__(self, address: str) -> dict[str, Any] | None:
        """The score document."""
        ...


class RiskGate:
    """Wraps a RiskEngine with the wire-level effects on VerifyResponse / SettleResponse."""

    def __init__(self, engine: RiskEngine, trust: TrustOf | None = None) -> None:
        self.engine = engine
        self.trust = trust

    async def assess(
        self,
        ctx: PaymentContext,
        *,
        payer: str | None,
        resource: str = "",
        payment_id: str | None = None,
        tenant_id: str | None = None,
    ) -> RiskAssessment:
        """Assess a routed payment."""
        rctx = risk_context(ctx, payer=payer, resource=resource, payment_id=payment_id, tenant_id=tenant_id)
        assessment = await self.engine.assess(rctx)
        if self.trust is None or not payer:
            return assessment
        # extensions.risk.trust: the payer's score from our records ({score: 0, factors: null} before any)
        found = await self.trust(payer)
        return replace(assessment, trust=found if found is not None else {"score": 0, "factors": None})

    @staticmethod
    def _extensions(existing: object, assessment: RiskAssessment) -> dict[str, object]:
        out = dict(existing) if isinstance(existing, dict) else {}
        out["risk"] = assessment.to_wire()
        return out

    def apply_verify(self, resp: VerifyResponse, assessment: RiskAssessment) -> VerifyResponse:
        """Attach the assessment; a block makes the payment invalid with reason ``risk_blocked``."""
        resp.extensions = self._extensions(resp.extensions, assessment)
        if assessment.blocked and resp.is_valid:
            resp.is_valid = False
            resp.invalid_reason = RISK_BLOCKED
            resp.invalid_message = assessment.summary()
        return resp

    async def verify(
        self,
        ctx: PaymentContext,
        resp: VerifyResponse,
        *,
        resource: str = "",
        payment_id: str | None = None,
        tenant_id: str | None = None,
    ) -> VerifyResponse:
        """Screen a payment the adapter found valid (invalid ones are returned untouched)."""
        if not resp.is_valid:
            return resp
        payer = resp.payer if isinstance(resp.payer, str) else None
        assessment = await self.assess(ctx, payer=payer, resource=resource, payment_id=payment_id, tenant_id=tenant_id)
        return self.apply_verify(resp, assessment)

    def blocked_settlement(self, network: str, assessment: RiskAssessment, payer: str | None) -> SettleResponse:
        """The ``success: false`` answer for a settlement the risk stage refuses."""
        resp = SettleResponse(success=False, error_reason=RISK_BLOCKED, transaction="", network=network)
        resp.error_message = assessment.summary()
        resp.extensions = self._extensions(None, assessment)
        if payer:
            resp.payer = payer
        return resp

    async def settled(
        self,
        ctx: PaymentContext,
        resp: SettleResponse,
        *,
        resource: str = "",
        tenant_id: str | None = None,
    ) -> None:
        """Learn from a confirmed settlement (amount baselines, payer history)."""
        if not resp.success:
            return
        payer = resp.payer if isinstance(resp.payer, str) else None
        await self.engine.record(risk_context(ctx, payer=payer, resource=resource, tenant_id=tenant_id))
