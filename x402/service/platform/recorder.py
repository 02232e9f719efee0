"""Turn facilitator outcomes (verify, settle, verify-tx) into payment records and their provider events."""

from __future__ import annotations

import uuid
from dataclasses import replace as dc_replace
from typing import Any

from aiohttp import web
from msgspec import UnsetType

from risk.model import RISK_BLOCKED
from x402.errors import BadRequest
from x402.service.events.outbox import Event
from x402.service.outcome import OUTCOME_DETAIL, OutcomeDetail
from x402.service.platform.auth import principal_of
from x402.service.platform.writer import PaymentRecord
from x402.wire import jsonlimits, reasons
from x402.wire.models import PaymentRequirementsV1, SettleResponse, VerifyResponse, resource_url


def _s(value: object) -> str | None:
    return None if value is None or isinstance(value, UnsetType) else str(value)


def _amount(raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        return 0
    return value if value >= 0 else 0


def _risk(extensions: object) -> dict[str, Any]:
    """The risk columns of a record from the assessment the answer carries (``extensions.risk``), if any."""
    risk = extensions.get("risk") if isinstance(extensions, dict) else None
    if not isinstance(risk, dict) or not isinstance(risk.get("recommendation"), str):
        return {}
    codes = sorted({str(f["code"]) for f in risk.get("flags", ()) if isinstance(f, dict) and "code" in f})
    level = risk.get("level")
    return {
        "risk": risk["recommendation"],
        "risk_level": level if isinstance(level, str) else None,
        "risk_flags": ",".join(codes) or None,
    }


def _detail(detail: OutcomeDetail) -> dict[str, Any]:
    return {"resource": detail.resource, "method": detail.method, "latency_ms": detail.latency_ms}


def record_for(request: web.Request, kind: str, requirements: Any, result: Any) -> PaymentRecord | None:
    """The record of one outcome, or None when there is nothing to record."""
    principal = principal_of(request)
    tenant = principal.tenant_id if principal is not None else None
    return build_record(tenant, kind, requirements, result, request.get(OUTCOME_DETAIL) or OutcomeDetail())


def build_record(
    tenant: uuid.UUID | None, kind: str, requirements: Any, result: Any, detail: OutcomeDetail
) -> PaymentRecord | None:
    """The record of one outcome of ``tenant`` (None: no tenant), or None when there is nothing to record."""
    if kind == "verify_tx":
        record = _verify_tx(tenant, requirements, result)
        if record is None:
            return None
        return dc_replace(record, **_detail(detail), **_risk(result))
    if requirements is None:
        return None
    amount = (
        requirements.max_amount_required if isinstance(requirements, PaymentRequirementsV1) else requirements.amount
    )
    common: dict[str, Any] = {
        "tenant_id": tenant,
        "network": str(requirements.network),
        "asset": str(requirements.asset),
        "pay_to": str(requirements.pay_to),
        "amount": _amount(amount),
        **_detail(detail),
        **_risk(getattr(result, "extensions", None)),
    }
    if isinstance(result, VerifyResponse):
        return PaymentRecord(
            kind="verify",
            status="valid" if result.is_valid else "invalid",
            payer=_s(result.payer),
            reason=_s(result.invalid_reason),
            **common,
        )
    if isinstance(result, SettleResponse):
        reason = _s(result.error_reason)
        status = "success" if result.success else ("pending" if reason == reasons.SETTLEMENT_PENDING else "failed")
        if result.success and _s(result.amount) is not None:
            common["amount"] = _amount(result.amount)
        return PaymentRecord(
            kind="settle", status=status, payer=_s(result.payer), tx=result.transaction or None, reason=reason, **common
        )
    return None


def _verify_tx(tenant: Any, raw: object, result: Any) -> PaymentRecord | None:
    if not isinstance(result, dict):
        return None
    # payTo and asset are only in the request body (already validated by the handler)
    body: dict[str, Any] = {}
    if isinstance(raw, bytes | str):
        try:
            doc = jsonlimits.loads(raw)
        except BadRequest:
            doc = {}
        body = doc if isinstance(doc, dict) else {}
    return PaymentRecord(
        kind="verify_tx",
        tenant_id=tenant,
        status="verified" if result.get("verified") else str(result.get("status") or "invalid"),
        network=str(result.get("network", "")),
        asset=str(body.get("asset", "")),
        pay_to=str(body.get("payTo", "")),
        payer=_s(result.get("payer")),
        amount=_amount(result.get("amount", 0)),
        tx=_s(result.get("transaction")),
        reason=_s(result.get("reason")),
    )


#: Statuses of a record that answer "paid" / "not settled yet".
_OK = frozenset({"valid", "success", "verified"})
_DUPLICATES = frozenset({reasons.DUPLICATE_SETTLEMENT, "transaction_already_used"})


def event_type(record: PaymentRecord) -> str:
    """The ``payment.*`` event an outcome is: verified, settled, pending, duplicate or failed."""
    if record.status in _OK:
        return "payment.settled" if record.kind == "settle" else "payment.verified"
    if record.status == "pending" or record.reason == reasons.SETTLEMENT_PENDING:
        return "payment.pending"
    if record.reason in _DUPLICATES:
        return "payment.duplicate"
    return "payment.failed"


def payment_data(record: PaymentRecord, resource: str | None = None) -> dict[str, Any]:
    """An event's ``data`` for a payment outcome (amount: atomic units as a string)."""
    return {
        "paymentId": str(record.id),
        "kind": record.kind,
        "status": record.status,
        "network": record.network,
        "asset": record.asset,
        "amount": str(record.amount),
        "payer": record.payer,
        "payTo": record.pay_to,
        "transaction": record.tx,
        "reason": record.reason,
        "resource": resource or None,
    }


def events_for(record: PaymentRecord, resource: str | None = None) -> list[Event]:
    """The provider events one outcome causes: its ``payment.*`` event, and ``risk.blocked`` when refused so."""
    data = payment_data(record, resource)
    events = [Event(event_type(record), data, record.tenant_id, created_at=record.created_at)]
    if record.reason == RISK_BLOCKED:
        events.append(Event("risk.blocked", data, record.tenant_id, created_at=record.created_at))
    return events


def resource_of(payload: Any, requirements: Any) -> str | None:
    """The paid resource's URL when the payment names one."""
    if payload is None or requirements is None:
        return None
    try:
        return resource_url(payload, requirements) or None
    except Exception:  # a payload too odd to read a URL from still gets its record
        return None
