"""Operator API over dead-lettered payment records: list, inspect, replay one, replay every open one."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from x402.errors import BadRequest, Forbidden, NotFound
from x402.service.appkeys import DB
from x402.service.http import json_response as _json
from x402.service.platform import deadletters
from x402.service.platform.auth import require_principal

routes = web.RouteTableDef()
BASE = "/v1/admin/record-dead-letters"
MAX_LIMIT = 500
STATUSES = ("open", "replayed", "all")


def _operator(request: web.Request) -> None:
    """Dead letters mix every tenant's records: only the operator sees them."""
    if not require_principal(request).operator:
        raise Forbidden("only the operator handles record dead letters", code="operator_only")


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("id must be a dead letter's integer id", code="invalid_id")
    return int(raw)


def _letter(letter: dict[str, Any] | None) -> web.Response:
    """The answer about one dead letter (its state, or with its rows); 404 when there is no such letter."""
    if letter is None:
        raise NotFound("no such dead letter")
    return _json(letter)


@routes.get(BASE)
async def list_letters(request: web.Request) -> web.Response:
    """Dead letters, oldest first (``status`` open (default), replayed or all; ``limit`` 1-500, default 100)."""
    _operator(request)
    status = request.query.get("status", "open")
    if status not in STATUSES:
        raise BadRequest("status must be open, replayed or all", code="invalid_query")
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer between 1 and {MAX_LIMIT}", code="invalid_query")
    return _json({"data": await deadletters.list_dead_letters(request.app[DB], status=status, limit=int(raw))})


@routes.get(BASE + "/{id}")
async def get_letter(request: web.Request) -> web.Response:
    """One dead letter with its records and events."""
    _operator(request)
    return _letter(await deadletters.get_dead_letter(request.app[DB], _id(request)))


@routes.post(BASE + "/{id}/replay")
async def replay_letter(request: web.Request) -> web.Response:
    """Write one dead letter's records and events now (idempotent); its state afterwards."""
    _operator(request)
    return _letter(await deadletters.replay(request.app[DB], _id(request)))


@routes.post(BASE + ":replay")
async def replay_all(request: web.Request) -> web.Response:
    """Replay every open dead letter (up to 500); how many were replayed and how many are still open.

    ``:replay``, not ``/replay``: a path segment there would also be a dead letter id for ``GET /{id}``.
    """
    _operator(request)
    return _json(await deadletters.replay_open(request.app[DB], limit=MAX_LIMIT))
