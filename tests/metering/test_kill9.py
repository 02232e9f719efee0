"""No acknowledged usage event is lost when ``x402 serve`` is killed with SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import secrets
import signal

import aiohttp
import asyncpg
import pytest

from tests.harness.procs import x402_serve
from tests.harness.services import free_port


@pytest.mark.slow
async def test_acknowledged_events_survive_kill_9(database_url: str) -> None:
    token = secrets.token_urlsafe(24)
    env = {"DATABASE_URL": database_url, "X402_ADMIN_TOKEN": token, "X402_REQUIRE_API_KEYS": "true"}
    acknowledged: list[str] = []
    async with x402_serve(env=env, port=free_port()) as svc, aiohttp.ClientSession() as http:
        op = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{svc.base_url}/v1/tenants", json={"name": "kill9"}, headers=op) as r:
            tenant = (await r.json())["id"]
        async with http.post(f"{svc.base_url}/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}, headers=op) as r:
            key = (await r.json())["key"]
        h = {"Authorization": f"Bearer {key}"}

        async def sender(lane: int) -> None:
            n = 0
            while True:
                batch = [{"id": f"l{lane}-{n}-{i}", "customer": "c", "meter": "m"} for i in range(200)]
                n += 1
                try:
                    async with http.post(f"{svc.base_url}/v1/events", json={"events": batch}, headers=h) as r:
                        if r.status == 200:
                            acknowledged.extend((await r.json())["accepted"])
                except aiohttp.ClientError:
                    return

        lanes = [asyncio.create_task(sender(i)) for i in range(4)]
        while len(acknowledged) < 4000:  # well into the stream
            await asyncio.sleep(0.02)
        await svc.stop(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*lanes), 30)
    conn = await asyncpg.connect(database_url)
    try:
        stored = {r["id"] for r in await conn.fetch("SELECT id FROM usage_events")}
    finally:
        await conn.close()
    assert len(acknowledged) >= 4000
    assert set(acknowledged) <= stored
