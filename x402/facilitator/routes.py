"""The facilitator HTTP API (x402-spec §6): POST /verify, POST /settle, GET /supported, POST verify-tx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from x402.appkeys import CHAINS, DB, METRICS, SETTINGS
from x402.errors import BadRequest
from x402.facilitator.journal import Journal
from x402.facilitator.reconciler import Reconciler
from x402.facilitator.service import FacilitatorService
from x402.facilitator.verify_tx import verify_transaction
from x402.logs import get_logger
from x402.wire.models import decode_facilitator_request, encode_json

log = get_logger("x402.facilitator")

#: Decides whether a request may use a facilitator endpoint (tenant API keys plug in here); raises to refuse.
Authorizer = Callable[[web.Request, str], Awaitable[None]]

FACILITATOR: web.AppKey[FacilitatorService] = web.AppKey("facilitator")
AUTHORIZER: web.AppKey[Authorizer] = web.AppKey("facilitator_authorizer")
RECONCILER: web.AppKey[Reconciler] = web.AppKey("reconciler")

routes = web.RouteTableDef()


async def allow_all(request: web.Request, scope: str) -> None:
    """The default authorizer: the facilitator is open (the platform layer replaces this with API keys)."""


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=encode_json(body), content_type="application/json")


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
    await request.app[AUTHORIZER](request, "verify")
    req = decode_facilitator_request(await _read_body(request))
    result = await request.app[FACILITATOR].verify(req.payload, req.requirements)
    return _json(result)


@routes.post("/settle")
async def post_settle(request: web.Request) -> web.Response:
    """Settle a payment; negative results are HTTP 200 with ``success: false``."""
    await request.app[AUTHORIZER](request, "settle")
    req = decode_facilitator_request(await _read_body(request))
    result = await request.app[FACILITATOR].settle(req.payload, req.requirements)
    return _json(result)


@routes.post("/v1/payments/verify-tx")
async def post_verify_tx(request: web.Request) -> web.Response:
    """Verify a plain on-chain payment by transaction hash (accepted once per payTo)."""
    await request.app[AUTHORIZER](request, "verify")
    result = await verify_transaction(request.app[CHAINS], request.app[DB], await _read_body(request))
    return _json(result)


async def _service_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    journal = Journal(app[DB])
    service = FacilitatorService(app[CHAINS], journal, settle_timeout=settings.settle_timeout, metrics=app[METRICS])
    app[FACILITATOR] = service
    reconciler = Reconciler(service, journal, app[CHAINS])
    app[RECONCILER] = reconciler
    task = (
        asyncio.create_task(reconciler.loop(settings.reconcile_interval)) if settings.reconcile_interval > 0 else None
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
    app.cleanup_ctx.append(_service_ctx)
    app.add_routes(routes)
