"""Per-tenant rate limits: 429 with Retry-After and RateLimit-* before any work, shared by processes via Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.harness.services import free_port
from tests.platform.conftest import bearer, new_key, new_tenant
from x402.app import create_app
from x402.platform.keys import SCOPES
from x402.platform.tenants import Actor, TenantStore, parse_uuid
from x402.settings import Settings

RATE = 5


async def test_burst_gets_429_with_headers(psettings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(psettings.with_(tiers_override={"free": {"ratePerSecond": RATE}})))
    tenant = await new_tenant(client, "bursty")
    key = (await new_key(client, tenant, ["verify", "settle"]))["key"]
    # an unparsable body: allowed requests fail at parsing (400), refused ones never get that far (429)
    started = time.monotonic()
    rs = await asyncio.gather(
        *(
            client.post("/settle", data=b"{broken", headers={**bearer(key), "Content-Type": "application/json"})
            for _ in range(30)
        )
    )
    elapsed = time.monotonic() - started
    statuses = [r.status for r in rs]
    assert set(statuses) <= {400, 429}
    allowed = statuses.count(400)
    assert allowed >= 1
    assert statuses.count(429) >= 1
    if elapsed < 1.0:
        assert allowed == RATE
    limited = next(r for r in rs if r.status == 429)
    problem = await limited.json()
    assert problem["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["RateLimit-Limit"] == str(RATE)
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert int(limited.headers["RateLimit-Reset"]) >= 1
    await asyncio.sleep(1.1)
    r = await client.post("/settle", data=b"{broken", headers={**bearer(key), "Content-Type": "application/json"})
    assert r.status == 400


@contextlib.asynccontextmanager
async def _server(port: int, env: dict[str, str]) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "x402.cli",
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + 30
            while True:
                if proc.returncode is not None:
                    err = await proc.stderr.read() if proc.stderr else b""
                    pytest.fail(f"server exited: {err.decode()[-2000:]}")
                try:
                    async with s.get(url + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("server did not start")
                await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.slow
async def test_limit_is_shared_by_two_server_processes(database_url: str, redis_url: str) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = TenantStore(pool, frozenset({"free"}))
        tenant = await store.create_tenant("two-servers", "free", Actor("test"))
        _, key = await store.create_key(parse_uuid(tenant["id"]), Actor("test"), scopes=list(SCOPES))
    finally:
        await pool.close()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "X402_REQUIRE_API_KEYS": "true",
        "X402_TIERS": json.dumps({"free": {"ratePerSecond": RATE}}),
        "X402_LOG_LEVEL": "warning",
        "X402_RECONCILE_INTERVAL": "0",
    }
    headers = {**bearer(key), "Content-Type": "application/json"}
    async with (
        _server(free_port(), env) as one,
        _server(free_port(), env) as two,
        aiohttp.ClientSession(headers=headers) as s,
    ):

        async def hit(url: str) -> tuple[str, int]:
            async with s.post(url + "/settle", data=b"{broken") as r:
                return url, r.status

        async def warm(url: str) -> None:
            async with s.get(url + "/healthz") as r:
                await r.read()

        # connections first, so the burst itself is short
        await asyncio.gather(*(warm(u) for u in (one, two) for _ in range(10)))
        started = time.monotonic()
        results = await asyncio.gather(*(hit(one if i % 2 else two) for i in range(40)))
        elapsed = time.monotonic() - started
    allowed = [u for u, status in results if status == 400]
    refused = [u for u, status in results if status == 429]
    assert len(allowed) + len(refused) == 40
    assert refused, "no request was rate limited"
    # one window shared through Redis: without it each process would let RATE through (2 * RATE in all)
    windows = 1 + int(elapsed)
    print(f"two processes: {len(allowed)} of 40 allowed in {elapsed:.3f}s (limit {RATE}/s)")
    assert len(allowed) <= RATE * windows, (len(allowed), elapsed)
    assert set(refused) == {one, two}
