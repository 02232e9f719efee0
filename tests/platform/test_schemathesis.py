"""Schemathesis with every check against ``/openapi.json``: the document is exact, so generated clients work.

The app runs on real Postgres and Redis with API keys required; Schemathesis (its CLI, in a subprocess) sends
schema-valid and schema-violating requests with an all-scopes key and finds no failure. Name lookups other than
127.0.0.1 fail like an offline resolver, so nothing leaves the machine. There is no baseline of accepted
failures: the few facts a generator cannot know (a signature must verify) are named, per operation and check, in
``schemathesis.toml``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.resolver import DefaultResolver

from chains.config import NetworkConfig
from chains.evm.devchain import DevChain
from tests.harness.runner import ServiceTestServer
from tests.platform.conftest import new_key, new_tenant
from x402.service.app import create_app
from x402.service.settings import Settings

SCOPES = ["verify", "settle", "wallets", "registry", "admin"]
#: Examples per operation and phase: small, so the run stays well under a minute.
EXAMPLES = "8"


@pytest.fixture
def offline_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outbound fetches (webhooks, wallet pay, registry import) resolve nothing but 127.0.0.1."""

    async def resolve(self: Any, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        if host in ("127.0.0.1", "localhost"):
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": family, "proto": 0, "flags": 0}]
        raise OSError(f"offline test: no name lookup for {host}")

    monkeypatch.setattr(DefaultResolver, "resolve", resolve)


@pytest.mark.slow
@pytest.mark.allow_blocking
async def test_schemathesis_all_checks_find_nothing(
    psettings: Settings, devchain: DevChain, aiohttp_client: Any, tmp_path: Path, offline_dns: None
) -> None:
    # one configured network (the session's anvil), so verify-tx documents a network enum to draw from
    network = NetworkConfig("eip155:31337", (devchain.rpc_url,))
    settings = psettings.with_(master_key="ab" * 32, networks=(network,))
    client = await aiohttp_client(ServiceTestServer(create_app(settings)))
    tenant = await new_tenant(client, "schemathesis", tier="enterprise")
    key = await new_key(client, tenant, SCOPES)
    base = str(client.make_url("")).rstrip("/")
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "NO_PROXY": "*",
        "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis"),
        "SCHEMATHESIS_HOOKS": "tests.platform.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "-H",
        f"Authorization: Bearer {key['key']}",
        "--max-examples",
        EXAMPLES,
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "14",
        "--generation-deterministic",
        "--workers",
        "1",
        "--no-color",
        "--request-timeout",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-20_000:]
    assert "No issues found" in text or "passed" in text, text[-5_000:]
    assert not Path(__file__).with_name("schemathesis-baseline.json").exists(), "no baseline of accepted failures"
