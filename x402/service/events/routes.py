"""``/v1/webhooks``: endpoints (with event filters, rotation, ping), delivery logs and dead letters, tenant-scoped."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from wallets.errors import WalletForbidden
from x402.errors import BadRequest, Forbidden, NotFound, Unauthorized, ValidationFailed
from x402.service.appkeys import SETTINGS, WEBHOOKS
from x402.service.events.deadletters import LetterFilter, check_status
from x402.service.events.endpoints import Who
from x402.service.events.outbox import EVENT_TYPES
from x402.service.events.service import WebhookService
from x402.service.http import json_object, json_response
from x402.service.middleware import REQUEST_ID
from x402.service.platform.auth import principal_of

routes = web.RouteTableDef()

_UUID = "{id:[0-9a-fA-F-]{36}}"
_LETTER = "{id:[0-9]{1,18}}"


def _caller(request: web.Request) -> tuple[WebhookService, Who]:
    """The service and the caller: a tenant key with the ``wallets`` or ``admin`` scope (no agent key)."""
    service = request.app[WEBHOOKS]
    rid = request.get(REQUEST_ID)
    principal = principal_of(request)
    if principal is None:
        if request.app[SETTINGS].require_api_keys:
            raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")
        return service, Who(None, "anonymous", rid)
    if principal.agent:
        raise WalletForbidden("an agent key may only pay from and read its wallet")
    if not principal.operator and not {"wallets", "admin"} & principal.scopes:
        raise Forbidden("webhooks need the 'wallets' or 'admin' scope", code="insufficient_scope")
    return service, Who(principal.tenant_id, principal.actor, rid)


def _endpoint_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such webhook endpoint", code="webhook_not_found") from None


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "")
    if raw == "":
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ValidationFailed("limit must be an integer from 1 to 100", code="invalid_query")
    return int(raw)


def _cursor(request: web.Request) -> int | None:
    raw = request.query.get("cursor", "")
    if raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationFailed("cursor must be the nextCursor of the previous page", code="invalid_query")
    return int(raw)


_UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _time(value: Any, name: str) -> datetime | None:
    """An ISO 8601 time (no zone: UTC), as ``/v1/payments`` reads its range; 400 ``invalid_query`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise BadRequest(f"{name} must be an ISO 8601 time", code="invalid_query")


def _filter(source: Any, *, query: bool) -> LetterFilter:
    """Endpoint, type and time range from the query (an empty value = no filter) or a replay body."""

    def get(name: str) -> Any:
        value = source.get(name)
        return None if query and value == "" else value

    endpoint = get("endpointId")
    endpoint_id: uuid.UUID | None = None
    if endpoint is not None:
        if not isinstance(endpoint, str) or not _UUID_TEXT.fullmatch(endpoint):
            raise BadRequest("endpointId must be a webhook endpoint id", code="invalid_query")
        endpoint_id = uuid.UUID(endpoint)
    kind = get("type")
    if kind is not None and kind not in EVENT_TYPES:
        raise BadRequest("type must be an event type", code="invalid_query")
    return LetterFilter(endpoint_id, kind, _time(get("since"), "since"), _time(get("until"), "until"))


@routes.post("/v1/webhooks")
async def create(request: web.Request) -> web.Response:
    """Register an endpoint; its signing secret is in this answer only."""
    service, who = _caller(request)
    doc = await json_object(request)
    unknown = sorted(set(doc) - {"url", "events", "description"})
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code="invalid_webhook")
    meta, secret = await service.endpoints.create(who, doc.get("url"), doc.get("events"), doc.get("description"))
    return json_response({**meta, "secret": secret}, 201)


@routes.get("/v1/webhooks")
async def list_all(request: web.Request) -> web.Response:
    """The caller's endpoints."""
    service, who = _caller(request)
    return json_response({"webhooks": await service.endpoints.list_all(who.tenant_id)})


@routes.get("/v1/webhooks/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    """Dead letters, newest first, filtered by endpoint, event type and time range."""
    service, who = _caller(request)
    letters, cursor = await service.dead_letters.letters(
        who.tenant_id, _filter(request.query, query=True), _limit(request), _cursor(request)
    )
    return json_response({"deadLetters": letters, "nextCursor": cursor})


@routes.post("/v1/webhooks/dead-letters/replay")
async def replay_many(request: web.Request) -> web.Response:
    """Queue again every dead letter matching the filter (audited)."""
    service, who = _caller(request)
    doc = await json_object(request)
    unknown = sorted(set(doc) - {"endpointId", "type", "since", "until"})
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code="invalid_query")
    return json_response(await service.dead_letters.replay_many(who, _filter(doc, query=False)))


@routes.get(f"/v1/webhooks/dead-letters/{_LETTER}")
async def dead_letter(request: web.Request) -> web.Response:
    """One dead letter with its event."""
    service, who = _caller(request)
    return json_response(await service.dead_letters.get(who.tenant_id, int(request.match_info["id"])))


@routes.post(f"/v1/webhooks/dead-letters/{_LETTER}/replay")
async def replay_one(request: web.Request) -> web.Response:
    """Queue one dead letter again (audited)."""
    service, who = _caller(request)
    return json_response(await service.dead_letters.replay_one(who, int(request.match_info["id"])))


@routes.get(f"/v1/webhooks/{_UUID}")
async def get_one(request: web.Request) -> web.Response:
    """One endpoint."""
    service, who = _caller(request)
    return json_response(await service.endpoints.get(who.tenant_id, _endpoint_id(request)))


@routes.patch(f"/v1/webhooks/{_UUID}")
async def update(request: web.Request) -> web.Response:
    """Change url, events, description; ``active: true`` re-enables a disabled endpoint."""
    service, who = _caller(request)
    endpoint_id = _endpoint_id(request)
    doc = await json_object(request)
    return json_response(await service.endpoints.update(who, endpoint_id, doc))


@routes.delete(f"/v1/webhooks/{_UUID}")
async def delete(request: web.Request) -> web.Response:
    """Remove an endpoint with its queue and dead letters."""
    service, who = _caller(request)
    await service.endpoints.delete(who, _endpoint_id(request))
    return web.Response(status=204)


@routes.post(f"/v1/webhooks/{_UUID}/rotate-secret")
async def rotate(request: web.Request) -> web.Response:
    """A new signing secret (shown once); the old one keeps signing alongside for ``overlapSeconds``."""
    service, who = _caller(request)
    endpoint_id = _endpoint_id(request)
    doc = await json_object(request)
    unknown = sorted(set(doc) - {"overlapSeconds"})
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code="invalid_webhook")
    meta, secret = await service.endpoints.rotate(who, endpoint_id, doc.get("overlapSeconds"))
    return json_response({**meta, "secret": secret})


@routes.post(f"/v1/webhooks/{_UUID}/ping")
async def ping(request: web.Request) -> web.Response:
    """Send a ``webhook.ping`` event to this endpoint (see its delivery log)."""
    service, who = _caller(request)
    return json_response(await service.endpoints.ping(who, _endpoint_id(request)), 202)


@routes.get(f"/v1/webhooks/{_UUID}/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    """The endpoint's delivery log, newest first."""
    service, who = _caller(request)
    endpoint_id = _endpoint_id(request)
    rows, cursor = await service.dead_letters.deliveries(
        who.tenant_id, endpoint_id, check_status(request.query.get("status")), _limit(request), _cursor(request)
    )
    return json_response({"deliveries": rows, "nextCursor": cursor})
