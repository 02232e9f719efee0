"""The examples run for real: ``x402 serve --dev`` as a subprocess, ``agent_pay.py`` paying its demo route, and
``provider_app.py`` (remote facilitator = that service) paid by ``agent_pay.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from chains.evm.devchain import DevChain
from tests.harness.evm import address_of, new_key, token_balance
from tests.harness.procs import run_agent_example
from tests.harness.services import free_port
from x402.service.demo import DEMO_AMOUNT, DEMO_PAY_TO
from x402.service.server import local_master_key

ROOT = Path(__file__).resolve().parents[2]


async def _wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 90) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"{url}: process exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as r:
                    if r.status < 500:
                        return await r.json(content_type=None) if r.status == 200 else None
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s")
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _process(*args: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _records_of(database_url: str, resource: str, want: int) -> list[Any]:
    """The payment records naming ``resource`` once ``want`` of them are committed (the writer batches)."""
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(200):
            rows = await conn.fetch(
                """SELECT p.kind, p.status, p.method, p.latency_ms, t.name AS tenant FROM payments p
                   LEFT JOIN tenants t ON t.id = p.tenant_id WHERE p.resource = $1 ORDER BY p.created_at""",
                resource,
            )
            if len(rows) >= want:
                return list(rows)
            await asyncio.sleep(0.05)
        raise AssertionError(f"{resource}: {len(rows)} payment records, expected {want}")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def serve_dev(
    database_url: str, data_dir: Path, *, listed: bool = False
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``x402 serve --dev`` as a subprocess: its base URL and the ``dev`` facts of ``/.well-known/x402``.

    ``listed``: as the README's gateway example starts it (``X402_PUBLIC_URL`` at its own URL, so it lists its own
    ``/demo/paid``, and ``X402_ALLOW_PRIVATE_OUTBOUND=1``, so wallets may fetch that loopback URL), with the local
    master key its embedded database would get (wallets need one; with ``DATABASE_URL`` none is made).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_env = {
        "DATABASE_URL": database_url,
        "X402_PORT": str(port),
        "X402_DEV_ANVIL_PORT": str(free_port()),
        "X402_DATA_DIR": str(data_dir),
        "X402_LOG_LEVEL": "warning",
    }
    if listed:
        key_file = await asyncio.to_thread(local_master_key, data_dir)
        serve_env |= {
            "X402_PUBLIC_URL": base,
            "X402_ALLOW_PRIVATE_OUTBOUND": "1",
            "X402_MASTER_KEY_FILE": str(key_file),
        }
    async with _process(sys.executable, "-m", "x402.service.cli", "serve", "--dev", env=serve_env) as serve:
        for _ in range(100):  # a busy box may answer something other than 200 first
            wk = await _wait_http(base + "/.well-known/x402", serve)
            if wk is not None:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("/.well-known/x402 never answered 200")
        yield base, wk["dev"]


def provider_example_env(base: str, dev: dict[str, Any], pay_to: str, port: int) -> dict[str, str]:
    """The environment of a provider example settling through the dev service in the dev token."""
    return {
        "FACILITATOR_URL": base,
        "PAY_TO": pay_to,
        "ASSET": dev["asset"]["address"],
        "TOKEN_NAME": dev["asset"]["name"],
        "TOKEN_VERSION": dev["asset"]["version"],
        "PORT": str(port),
    }


@pytest.mark.slow
async def test_serve_dev_demo_agent_and_provider_examples(database_url: str, tmp_path: Path) -> None:
    async with serve_dev(database_url, tmp_path) as (base, dev):
        assert dev["demo"]["path"] == "/demo/paid"
        chain = DevChain(rpc_url=dev["rpcUrl"])
        before = await token_balance(chain, DEMO_PAY_TO)

        result = await run_agent_example({"X402_URL": base})
        assert result["status"] == 200, result
        assert json.loads(result["body"])["demo"] == "paid"
        assert result["settlement"]["success"] is True
        assert await token_balance(chain, DEMO_PAY_TO) == before + DEMO_AMOUNT
        # the paywall's payment is recorded for the dev tenant with its resource, method and latencies
        demo = await _records_of(database_url, base + "/demo/paid", 2)
        assert [(r["kind"], r["status"], r["method"], r["tenant"]) for r in demo] == [
            ("verify", "valid", "GET", "dev"),
            ("settle", "success", "GET", "dev"),
        ]
        assert all(r["latency_ms"] > 0 for r in demo)

        pay_to = address_of(new_key())
        provider_port = free_port()
        provider_env = provider_example_env(base, dev, pay_to, provider_port)
        async with _process(sys.executable, "examples/provider_app.py", env=provider_env) as provider:
            provider_url = f"http://127.0.0.1:{provider_port}/weather"
            await _wait_http(provider_url, provider)
            result = await run_agent_example(
                {"X402_URL": base, "PAYER_KEY": dev["payers"][1]["privateKey"]}, provider_url
            )
            assert result["status"] == 200, result
            assert json.loads(result["body"]) == {"city": "Lisbon", "sky": "sunny"}
        assert await token_balance(chain, pay_to) == 10_000
        # over /verify and /settle: the resource comes from the payment itself
        remote = await _records_of(database_url, provider_url, 2)
        assert [(r["kind"], r["status"]) for r in remote] == [("verify", "valid"), ("settle", "success")]
        assert all(r["latency_ms"] > 0 for r in remote)

        # the same example offering a network the facilitator does not settle refuses to start (its @paid route
        # is checked against /supported even though the paywall wraps the handler first)
        async with _process(
            sys.executable, "examples/provider_app.py", env={**provider_env, "NETWORK": "eip155:8453"}
        ) as refused:
            _, err = await asyncio.wait_for(refused.communicate(), 60)
        assert refused.returncode != 0
        assert b"does not support exact on eip155:8453" in err, err[-2000:]
