"""``x402.client.usage.UsageClient`` against the real endpoint: batching, flush on close and at exit, a restart
mid-stream, a batch whose answer is lost."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from tests.harness.services import free_port
from tests.metering.test_ingest import _tenant_key
from tests.platform.conftest import ADMIN
from x402.client.usage import UsageClient
from x402.service.app import create_app
from x402.service.settings import Settings


async def _stored(database_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT count(*) AS n, count(DISTINCT id) AS d FROM usage_events")
    finally:
        await conn.close()
    assert row is not None
    return int(row["n"]), int(row["d"])


async def test_batches_of_100_or_500_ms_and_flush_on_close(client: Any, database_url: str) -> None:
    _, h = await _tenant_key(client, "usage-client")
    key = h["Authorization"].removeprefix("Bearer ")
    async with aiohttp.ClientSession() as http:
        usage = UsageClient(http, str(client.make_url("")), key)
        began = time.perf_counter()
        for i in range(250):
            usage.record("cus_1", "tokens", i)  # never awaits
        assert time.perf_counter() - began < 0.5
        for _ in range(200):  # two full batches go at once; the 50 left wait for the 500 ms tick
            if usage.sent >= 200:
                break
            await asyncio.sleep(0.01)
        assert usage.sent == 200
        assert usage.pending == 50
        await asyncio.sleep(0.8)
        assert usage.sent == 250
        usage.record("cus_1", "tokens", 1)
        usage.record("cus_1", "tokens", 2, event_id="bad id")  # refused by the service, reported
        await usage.close()  # flushes what is left
        assert usage.sent == 251
        assert [e["code"] for e in usage.rejected] == ["invalid_id"]
    assert await _stored(database_url) == (251, 251)


async def test_a_server_restart_mid_stream_loses_and_doubles_nothing(psettings: Settings, database_url: str) -> None:
    port = free_port()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(create_app(psettings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = await start()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        op = {"Authorization": f"Bearer {ADMIN}"}
        async with http.post(f"{base}/v1/tenants", json={"name": "restart"}, headers=op) as r:
            tenant = (await r.json())["id"]
        async with http.post(f"{base}/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}, headers=op) as r:
            key = (await r.json())["key"]
        usage = UsageClient(http, base, key, backoff=0.05, backoff_cap=0.2)
        for i in range(150):
            usage.record(f"cus_{i % 3}", "tokens", 1)
        await usage.flush()
        await runner.cleanup()  # the service goes away mid-stream
        for i in range(150):
            usage.record(f"cus_{i % 3}", "tokens", 1)
        await asyncio.sleep(0.7)  # sends fail and are retried with backoff
        assert usage.pending == 150
        runner = await start()
        try:
            await usage.close()
        finally:
            await runner.cleanup()
    assert usage.sent == 300
    assert await _stored(database_url) == (300, 300)


# records 250 events, lets the first two batches go, and leaves asyncio.run without closing the client; the exit
# hook registered before the client's runs after it and prints what the client then counts. A second client is
# closed, then finds an event in its buffer: no exit hook of its is left to send it.
_NEVER_CLOSED = """
import asyncio, atexit, sys
import aiohttp
from x402.client.usage import UsageClient

async def main():
    async with aiohttp.ClientSession() as http:
        closed = UsageClient(http, sys.argv[1], sys.argv[2])
        for i in range(10):
            closed.record("cus_9", "tokens", 1)
        await closed.close()
        closed._buffer.append({"id": "left-behind", "customer": "cus_9", "meter": "tokens", "value": 1})
    usage = UsageClient(aiohttp.ClientSession(), sys.argv[1], sys.argv[2], interval=60)
    atexit.register(lambda: print(usage.sent, usage.pending, flush=True))
    for i in range(250):
        usage.record(f"cus_{i % 5}", "tokens", 1)
    for _ in range(500):
        if usage.sent >= 200:
            break
        await asyncio.sleep(0.01)
    print(usage.sent, usage.pending, flush=True)

asyncio.run(main())
"""


async def test_a_client_never_closed_flushes_at_interpreter_exit(client: Any, database_url: str) -> None:
    _, h = await _tenant_key(client, "usage-exit")
    key = h["Authorization"].removeprefix("Bearer ")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _NEVER_CLOSED,
        str(client.make_url("")),
        key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    # 200 sent by the running client, 50 still buffered when main returned; the exit hook sent them
    assert out.decode().split() == ["200", "50", "250", "0"], (out, err)
    # the closed client's 10, the other's 250; nothing of the closed client's after its close
    assert await _stored(database_url) == (260, 260)


class _LosingProxy:
    """A TCP proxy to the service that forwards every request and, for the ``lose``-th ``POST /v1/events``, lets
    the service answer (it commits before answering) and then cuts the connection instead of relaying the answer."""

    def __init__(self, upstream_port: int, lose: int) -> None:
        self.upstream_port = upstream_port
        self.lose = lose
        self.posts = 0  # POST /v1/events requests seen
        self.lost = 0  # answers dropped
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _conn(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        drop = asyncio.Event()

        async def requests() -> None:
            while data := await down_r.read(65536):
                if data.startswith(b"POST /v1/events"):
                    self.posts += 1
                    if self.posts == self.lose:
                        drop.set()
                up_w.write(data)
                await up_w.drain()

        async def answers() -> None:
            while data := await up_r.read(65536):
                if drop.is_set():  # the batch is committed: the answer goes nowhere
                    self.lost += 1
                    return
                down_w.write(data)
                await down_w.drain()

        pumps = [asyncio.ensure_future(requests()), asyncio.ensure_future(answers())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            down_w.close()
            up_w.close()


async def test_a_batch_whose_answer_is_lost_is_resent_and_counted_once(client: Any, database_url: str) -> None:
    _, h = await _tenant_key(client, "usage-lost-answer")
    key = h["Authorization"].removeprefix("Bearer ")
    proxy = _LosingProxy(client.server.port, lose=2)
    port = await proxy.start()
    try:
        async with aiohttp.ClientSession() as http:
            usage = UsageClient(http, f"http://127.0.0.1:{port}", key, backoff=0.05, backoff_cap=0.2)
            for i in range(250):
                usage.record(f"cus_{i % 3}", "tokens", 1)
            await usage.close()
    finally:
        await proxy.close()
    assert proxy.lost == 1
    assert proxy.posts == 4  # three batches, the second one twice
    # the resent second batch was already stored: the service said so, and it is stored once
    assert (usage.sent, usage.duplicates, usage.pending) == (150, 100, 0)
    assert await _stored(database_url) == (250, 250)
