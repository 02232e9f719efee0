"""The facilitator HTTP API (architecture.md §6): POST /verify, POST /settle, GET /supported, POST verify-tx."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from x402.errors import BadRequest
from x402.logs import get_logger
from x402.service.appkeys import (
    AUTHORIZER,
    CHAINS,
    DB,
    EXTENSION_HANDLERS,
    EXTENSIONS,
    FACILITATOR,
    METRICS,
    OUTCOME,
    RECONCILER,
    RISK,
    SETTINGS,
    TRUST,
)
from x402.service.facilitator.journal import Journal
from x402.service.facilitator.reconciler import Reconciler
from x402.service.facilitator.service import FacilitatorService
from x402.service.facilitator.verify_tx import verify_transaction
from x402.service.http import ANSWER_NOT_FINAL
from x402.service.http import json_response as _json
from x402.service.outcome import OUTCOME_DETAIL, Outcome, OutcomeDetail, detail_of
from x402.service.risk_gate import RiskGate, TrustOf
from x402.service.storage.scope import system_scope
from x402.wire import reasons
from x402.wire.codec import EXTENSION_RESPONSES
from x402.wire.models import SettleResponse, VerifyResponse, decode_facilitator_request, encode_json
from x402.wire.payment_identifier import KEY as PAYMENT_IDENTIFIER

log = get_logger("x402.facilitator")

#: Decides whether a request may use a facilitator endpoint (tenant API keys plug in here); raises to refuse,
#: returns the caller's tenant id (None when anonymous or the operator).
Authorizer = Callable[[web.Request, str], Awaitable[str | None]]


#: Told every outcome before it is answered: records it (and its events) durably, or raises to refuse.
OutcomeHook = Callable[[Outcome], Awaitable[None]]


routes = web.RouteTableDef()


async def allow_all(request: web.Request, scope: str) -> str | None:
    """The default authorizer: the facilitator is open (the platform layer replaces this with API keys)."""
    return None


async def ignore_outcome(outcome: Outcome) -> None:
    """The default outcome hook: nothing is recorded (the platform layer records payments)."""


#: Extension answers that stay in the body too: the risk assessment is part of the verdict (issue: providers
#: read it from the response's extension fields; official clients ignore unknown extensions).
BODY_EXTENSIONS = frozenset({"risk"})


def _with_extension_responses(result: VerifyResponse | SettleResponse) -> web.Response:
    """Extension answers go in EXTENSION-RESPONSES header (architecture.md §6.4); only ``risk`` stays in the body."""
    ext = result.extensions
    if not isinstance(ext, dict) or not ext:
        return _json(result)
    body_ext = {k: v for k, v in ext.items() if k in BODY_EXTENSIONS}
    resp = _json(msgspec.structs.replace(result, extensions=body_ext or msgspec.UNSET))
    resp.headers[EXTENSION_RESPONSES] = base64.b64encode(encode_json(ext)).decode("ascii")
    return resp


async def _read_body(request: web.Request) -> bytes:
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise BadRequest(f"expected application/json, got {request.content_type}", code="unsupported_media_type")
    body = await request.read()
    if not body:
        raise BadRequest("empty body: expected {x402Version, paymentPayload, paymentRequirements}", code="invalid_json")
    return body


@routes.post("/verify")
async def post_verify(request: web.Request) -> web.Response:
    """Verify a payment; negative results are HTTP 200 with ``isValid: false``."""
    tenant = await request.app[AUTHORIZER](request, "verify")
    req = decode_facilitator_request(await _read_body(request))
    started = time.perf_counter()
    result = await request.app[FACILITATOR].verify(req.payload, req.requirements, tenant_id=tenant)
    request[OUTCOME_DETAIL] = detail_of(req.payload, req.requirements, (time.perf_counter() - started) * 1000)
    answer = _with_extension_responses(result)  # built before the commit wait: less to do once it ends
    await request.app[OUTCOME](Outcome("verify", req.requirements, result, request, payload=req.payload))
    return answer


@routes.post("/settle")
async def post_settle(request: web.Request) -> web.Response:
    """Settle a payment; negative results are HTTP 200 with ``success: false``."""
    tenant = await request.app[AUTHORIZER](request, "settle")
    req = decode_facilitator_request(await _read_body(request))
    started = time.perf_counter()
    result = await request.app[FACILITATOR].settle(req.payload, req.requirements, tenant_id=tenant)
    request[OUTCOME_DETAIL] = detail_of(req.payload, req.requirements, (time.perf_counter() - started) * 1000)
    if not result.success and result.error_reason == reasons.SETTLEMENT_PENDING:
        request[ANSWER_NOT_FINAL] = True  # a retry with the same Idempotency-Key must see the outcome
    answer = _with_extension_responses(result)
    await request.app[OUTCOME](Outcome("settle", req.requirements, result, request, payload=req.payload))
    return answer


@routes.post("/v1/payments/verify-tx")
async def post_verify_tx(request: web.Request) -> web.Response:
    """Verify a plain on-chain payment by transaction hash (accepted once per tenant and payTo; risk-screened)."""
    tenant = await request.app[AUTHORIZER](request, "verify")
    body = await _read_body(request)
    gate = request.app[FACILITATOR].risk
    engine = gate.engine if gate is not None else None
    started = time.perf_counter()
    result = await verify_transaction(request.app[CHAINS], request.app[DB], body, tenant_id=tenant, risk=engine)
    request[OUTCOME_DETAIL] = OutcomeDetail(latency_ms=round((time.perf_counter() - started) * 1000, 3))
    await request.app[OUTCOME](Outcome("verify_tx", body, result, request))
    return _json(result)


def _payer_trust(app: web.Application) -> TrustOf:
    """The payer's stored trust score for ``extensions.risk.trust`` (the trust service starts after this one)."""

    async def lookup(address: str) -> dict[str, Any] | None:
        trust = app.get(TRUST)
        return await trust.address_score(address) if trust is not None else None

    return lookup


async def _service_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    journal = Journal(app[DB])
    engine = app.get(RISK)  # built by x402.service.risk_api, shared with the paywall and wallets
    service = FacilitatorService(
        app[CHAINS],
        journal,
        settle_timeout=settings.settle_timeout,
        signer_wait=settings.signer_wait or None,
        metrics=app[METRICS],
        extensions=app[EXTENSIONS],
        extension_handlers=app[EXTENSION_HANDLERS],
        risk=RiskGate(engine, trust=_payer_trust(app)) if engine is not None else None,
    )
    app[FACILITATOR] = service
    reconciler = Reconciler(
        service,
        journal,
        app[CHAINS],
        metrics=app[METRICS],
        stuck_after=settings.settle_stuck_after,
        identifier_ttl_days=settings.payment_identifier_ttl_days,
    )
    app[RECONCILER] = reconciler
    with system_scope("settlement reconciler: open settlements of every tenant"):
        task = (
            asyncio.create_task(reconciler.loop(settings.reconcile_interval))
            if settings.reconcile_interval > 0
            else None
        )
    yield
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def install(app: web.Application) -> None:
    """Mount the facilitator API on a service app (after the database and chains contexts)."""
    if AUTHORIZER not in app:
        app[AUTHORIZER] = allow_all
    if OUTCOME not in app:
        app[OUTCOME] = ignore_outcome
    extensions = app[EXTENSIONS]
    if PAYMENT_IDENTIFIER not in extensions:  # implemented by the service on /verify and /settle
        extensions.append(PAYMENT_IDENTIFIER)
    app.cleanup_ctx.append(_service_ctx)
    app.add_routes(routes)
