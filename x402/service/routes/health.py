"""Liveness, readiness (Postgres, Redis, chain RPCs) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from x402.service.appkeys import CACHE, CHAINS, DB, METRICS, SETTINGS
from x402.service.http import json_response as _json
from x402.service.metrics import CONTENT_TYPE_LATEST

routes = web.RouteTableDef()
CHECK_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return _json({"status": "ok"})


async def _check_db(request: web.Request) -> bool:
    pool = request.app[DB]
    async with pool.acquire(timeout=CHECK_TIMEOUT) as conn:
        return bool(await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT) == 1)


async def _guard(coro: Any) -> Any:
    try:
        return await asyncio.wait_for(coro, CHECK_TIMEOUT)
    except Exception:
        return False


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Every dependency answers: Postgres, Redis when configured, each chain's RPC."""
    settings = request.app[SETTINGS]
    cache = request.app[CACHE]
    registry = request.app[CHAINS]
    adapters = list(registry)
    results = await asyncio.gather(
        _guard(_check_db(request)),
        _guard(cache.ping()),
        *(_guard(a.check_health()) for a in adapters),
    )
    checks: dict[str, Any] = {"postgres": bool(results[0])}
    if settings.redis_url:
        checks["redis"] = bool(results[1])
    else:
        checks["cache"] = "in-process"
    chains: dict[str, bool] = {}
    for net in registry.networks():
        chains[net] = False
    for res in results[2:]:
        if isinstance(res, dict):
            chains.update({k: bool(v) for k, v in res.items()})
    checks["chains"] = chains
    ok = checks["postgres"] and checks.get("redis", True) is not False and all(chains.values())
    return _json({"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
