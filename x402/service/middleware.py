"""Request middlewares: request ids, metrics and the one error renderer (application/problem+json)."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from x402 import tracing
from x402.errors import BadRequest, DependencyError, X402Error, problem_response
from x402.ids import request_id
from x402.logs import get_logger, scrub
from x402.service.appkeys import METRICS

log = get_logger("x402.service.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID: web.RequestKey[str] = web.RequestKey("x402_request_id")
_RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    431: "headers_too_large",
}


def _render(exc: X402Error, request_id: str | None) -> web.Response:
    # defence in depth: a detail quoting input never carries a secret-shaped value back out
    resp = problem_response(
        exc.status, exc.code, scrub(exc.detail), title=exc.title, extra=exc.extra, request_id=request_id
    )
    retry_after = exc.extra.get("retryAfter")
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    # errors that carry their own headers (rate limits: RateLimit-*, X402-Quota-*)
    resp.headers.update(getattr(exc, "headers", None) or {})
    return resp


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Assign a request id, time the request, and turn every error into problem+json."""
    rid = request.headers.get("X-Request-Id", "")
    if not _RID_OK.match(rid):
        rid = request_id()
    request[REQUEST_ID] = rid
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid)
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    if tracing.enabled():
        resp = await _traced(request, handler, rid, route)
    else:  # the hot path pays one check when tracing is off
        resp = await _answer(request, handler, rid)
    resp.headers["X-Request-Id"] = rid
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.count_request(request.method, route, resp.status, time.perf_counter() - started)
    return resp


async def _traced(request: web.Request, handler: Handler, rid: str, route: str) -> web.StreamResponse:
    attrs = {"http.request.method": request.method, "http.route": route}
    with tracing.span(f"{request.method} {route}", **attrs) as sp:
        tid = tracing.trace_id()
        if tid:
            structlog.contextvars.bind_contextvars(trace_id=tid)
        resp = await _answer(request, handler, rid)
        tracing.annotate(sp, **{"http.response.status_code": resp.status})
    return resp


async def _answer(request: web.Request, handler: Handler, rid: str) -> web.StreamResponse:
    try:
        if "%00" in request.raw_path:
            # a NUL in a path or query value would reach Postgres, which refuses it in text: say so, not a 500
            raise BadRequest("the URL contains a NUL character (%00)", code="nul_character")
        resp = await handler(request)
    except X402Error as exc:
        if isinstance(exc, DependencyError):
            log.warning("dependency_error", code=exc.code, dependency=exc.dependency, detail=exc.detail)
        resp = _render(exc, rid)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        resp = problem_response(exc.status, code, exc.reason or code, request_id=rid)
        for h in ("Allow", "Retry-After"):
            if h in exc.headers:
                resp.headers[h] = exc.headers[h]
    except (asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError, ConnectionRefusedError) as exc:
        log.error("database_unavailable", error=type(exc).__name__)
        resp = problem_response(
            503, "database_unavailable", "the database is unavailable", extra={"dependency": "postgres"}, request_id=rid
        )
    except (asyncpg.InterfaceError, OSError) as exc:
        log.error("dependency_io_error", error=type(exc).__name__, detail=str(exc)[:200])
        resp = problem_response(503, "dependency_unavailable", "a dependency is unavailable", request_id=rid)
    except (RedisConnectionError, RedisTimeoutError):
        log.error("redis_unavailable")
        resp = problem_response(
            503, "redis_unavailable", "the cache (Redis) is unavailable", extra={"dependency": "redis"}, request_id=rid
        )
    except Exception:
        log.exception("unhandled_error", path=request.path)
        resp = problem_response(500, "internal_error", "internal server error", request_id=rid)
    return resp
