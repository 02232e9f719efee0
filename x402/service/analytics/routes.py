"""``/v1/analytics/...``: the calling tenant's time series and breakdowns, as JSON or CSV.

Any tenant API key may read its own analytics (like ``/v1/payments`` and ``/v1/usage``); agent keys may not.
Every query filters on the caller's tenant and runs in its row-level security scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from x402.errors import BadRequest
from x402.service.analytics import breakdowns as bd
from x402.service.analytics import timeseries as ts
from x402.service.analytics.export import csv_response, wants_csv
from x402.service.analytics.folder import folder_ctx
from x402.service.analytics.session import reading
from x402.service.analytics.window import (
    BREAKDOWN_SPAN,
    DEFAULT_SPAN,
    MAX_BUCKETS,
    align,
    parse_interval,
    parse_tz,
    raw_range,
)
from x402.service.appkeys import PLATFORM
from x402.service.http import json_response
from x402.service.platform.auth import require_tenant

routes = web.RouteTableDef()

SERIES_COLUMNS = (
    "bucket",
    "count",
    "succeeded",
    "failed",
    "uniquePayers",
    "volume",
    "usd",
    "verifyP50Ms",
    "verifyP95Ms",
    "settleP50Ms",
    "settleP95Ms",
)


@routes.get("/v1/analytics/timeseries")
async def timeseries(request: web.Request) -> web.StreamResponse:
    """Gap-filled buckets (hour, day or week in ``tz``) of the window [from, to), widened to whole buckets."""
    principal = require_tenant(request)
    assert principal.tenant_id is not None
    interval = parse_interval(request)
    tz = parse_tz(request)
    start, end = raw_range(request, DEFAULT_SPAN[interval])
    async with reading(request.app[PLATFORM].store.pool) as conn:
        window = await align(conn, start, end, interval, tz)
        starts = await ts.buckets(conn, window)
        if len(starts) > MAX_BUCKETS:
            raise BadRequest(
                f"the window has {len(starts)} {interval} buckets; at most {MAX_BUCKETS}", code="range_too_large"
            )
        body = await ts.series(conn, principal.tenant_id, window, starts)
    if wants_csv(request):
        return csv_response(f"timeseries-{interval}", SERIES_COLUMNS, body["points"])
    return json_response(body)


Breakdown = Callable[..., Awaitable[bd.Answer]]
#: name -> (function, CSV columns, window unit, default span)
BREAKDOWNS: dict[str, tuple[Breakdown, tuple[str, ...], str, timedelta]] = {
    "resources": (
        bd.resources,
        ("resource", "method", "registryId", "count", "succeeded", "failed", "pending", "volume", "usd"),
        "hour",
        BREAKDOWN_SPAN,
    ),
    "networks": (
        bd.networks,
        ("network", "asset", "count", "succeeded", "failed", "pending", "amount", "usd", "uniquePayers"),
        "hour",
        BREAKDOWN_SPAN,
    ),
    "payers": (
        bd.payers,
        (
            "payer",
            "count",
            "succeeded",
            "failed",
            "volume",
            "usd",
            "firstSeen",
            "lastSeen",
            "lifetimePayments",
            "lifetimeValue",
            "lifetimeUsd",
        ),
        "hour",
        BREAKDOWN_SPAN,
    ),
    "failures": (bd.failures, ("reason", "kind", "network", "count", "share"), "hour", BREAKDOWN_SPAN),
    "risk": (bd.risk, ("type", "recommendation", "level", "code", "count"), "hour", BREAKDOWN_SPAN),
    "payouts": (
        bd.payouts,
        ("payTo", "network", "asset", "settled", "settledCount", "settledUsd", "pending", "pendingCount", "fees"),
        "hour",
        BREAKDOWN_SPAN,
    ),
    "cohorts": (bd.cohorts, ("cohort", "size", "week", "payers", "rate"), "week", timedelta(weeks=12)),
}
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit must be an integer", code="invalid_query", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}", code="invalid_query", field="limit")
    return limit


async def breakdown(request: web.Request, name: str) -> web.StreamResponse:
    """One breakdown over [from, to) widened to whole UTC hours (whole UTC weeks for cohorts)."""
    principal = require_tenant(request)
    assert principal.tenant_id is not None
    func, columns, unit, span = BREAKDOWNS[name]
    start, end = raw_range(request, span)
    limit = _limit(request)
    csv = wants_csv(request)
    async with reading(request.app[PLATFORM].store.pool) as conn:
        window = await align(conn, start, end, unit, "UTC")
        body, rows = await func(conn, principal.tenant_id, window, limit)
    if csv:
        return csv_response(name, columns, rows)
    return json_response(body)


def _handler(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await breakdown(request, name)

    handle.__name__ = f"analytics_{name}"
    handle.__doc__ = f"GET /v1/analytics/{name}"
    return handle


for _name in BREAKDOWNS:
    routes.get(f"/v1/analytics/{_name}")(_handler(_name))


def breakdown_names() -> list[str]:
    """The breakdowns served, in order."""
    return list(BREAKDOWNS)


def install(app: web.Application) -> None:
    """Mount the analytics API (after the platform, whose middleware authenticates the caller) and the folder."""
    app.add_routes(routes)
    app.cleanup_ctx.append(folder_ctx)
