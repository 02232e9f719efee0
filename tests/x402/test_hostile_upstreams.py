"""Our clients (EVM RPC pool, remote facilitator, X402Client, screening provider) against a peer answering JSON
nested 100,000 levels deep: a clean failure each, never a crash. Each client runs in a subprocess
(tests/harness/hostile_clients.py) so a crash is reported instead of killing pytest."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.harness.services import free_port

DEPTH = 100_000
DEEP = b"[" * DEPTH + b"]" * DEPTH
ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def deep_peer() -> AsyncIterator[str]:
    """Answers every request with a 100,000-level array (402 on /402, 200 elsewhere)."""

    async def any_request(request: web.Request) -> web.Response:
        await request.read()
        status = 402 if request.path == "/402" else 200
        return web.Response(status=status, body=DEEP, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_request)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("rpc", "ChainUnavailable"),
        ("remote_facilitator", "supported:facilitator_unavailable verify:facilitator_unavailable:True"),
        ("x402_client", "402:invalid_payment_required json:json_too_deep"),
        ("screening", "screen:json_too_deep"),
        ("solana", "solana:ChainUnavailable:no RPC endpoint of solana:test answered (SerdeJSONError)"),
    ],
)
async def test_clients_fail_cleanly_on_deep_answers(check: str, expected: str) -> None:
    async with deep_peer() as base:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.harness.hostile_clients",
            check,
            base,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"{check} exited with {proc.returncode}: {err.decode()[-2000:]}"
    line = out.decode().strip().splitlines()[-1]
    assert line.startswith(expected), line
    if check == "rpc":
        assert "json_too_deep" in line, line
