"""``/v1/analytics/...``: the calling tenant's time series and breakdowns, as JSON or CSV.

Any tenant API key may read its own analytics (like ``/v1/payments`` and ``/v1/usage``); agent keys may not.
Every query filters on the caller's tenant and runs in its row-level security scope.
"""

from __future__ import annotations

from aiohttp import web

from x402.errors import BadRequest
from x402.service.analytics import timeseries as ts
from x402.service.analytics.export import csv_response, wants_csv
from x402.service.analytics.window import (
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
    async with request.app[PLATFORM].store.pool.acquire() as conn:
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


def install(app: web.Application) -> None:
    """Mount the analytics API (after the platform, whose middleware authenticates the caller)."""
    app.add_routes(routes)
