"""Run the real ``x402`` command as a subprocess and wait for it to answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


@dataclass
class Service:
    """A running ``x402 serve`` subprocess."""

    proc: asyncio.subprocess.Process
    base_url: str
    output: list[str] = field(default_factory=list)

    async def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Signal it and wait for the exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise

    def text(self) -> str:
        """Everything it printed so far."""
        return "".join(self.output)


async def _pump(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


async def wait_http(url: str, timeout: float = 60.0, proc: asyncio.subprocess.Process | None = None) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if proc is not None and proc.returncode is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def x402_serve(
    *args: str,
    env: dict[str, str],
    port: int,
    timeout: float = 90.0,
    ready_path: str = "/healthz",
    cwd: str | None = None,
) -> AsyncIterator[Service]:
    """Start ``python -m x402.service.cli serve ARGS`` with ``env`` on ``port``; stop it (SIGINT) afterwards."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    full_env.update(env)
    full_env.setdefault("X402_LOG_LEVEL", "warning")
    full_env["X402_PORT"] = str(port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "x402.service.cli",
        "serve",
        *args,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
    )
    svc = Service(proc, f"http://127.0.0.1:{port}")
    pump = asyncio.ensure_future(_pump(proc.stdout, svc.output))
    try:
        try:
            await wait_http(svc.base_url + ready_path, timeout, proc)
        except Exception as exc:
            await asyncio.sleep(0.2)
            raise RuntimeError(f"x402 serve did not come up: {exc}\n{svc.text()}") from exc
        yield svc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await svc.stop(signal.SIGINT, 30)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pump, 5)


ROOT = Path(__file__).resolve().parents[2]


async def run_agent_example(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run ``examples/agent_pay.py`` (``env`` on top of ours); its JSON result line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "examples/agent_pay.py",
        *args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out.strip(), err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result
