"""First run of ``x402 serve --dev`` on a box without anvil: it installs anvil from npm into the data dir (one line),
or, without npm, says in one line what to run; never a traceback. Once installed, it is found without a word."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.harness.procs import x402_serve
from tests.harness.services import free_port
from x402.service.devmode import ANVIL_NPM_PACKAGE

ROOT = Path(__file__).resolve().parents[2]


def _bin_dir(tmp_path: Path, *tools: str) -> Path:
    """A PATH of its own holding only ``tools`` (no anvil on it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return bin_dir


def test_the_pinned_anvil_is_the_test_chains_one() -> None:
    pinned = json.loads((ROOT / "tests" / "chains" / "package.json").read_text())["devDependencies"]
    assert f"@foundry-rs/anvil@{pinned['@foundry-rs/anvil']}" == ANVIL_NPM_PACKAGE


def test_without_anvil_or_npm_one_line_says_what_to_run(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("X402_ANVIL_BIN", "REDIS_URL")}
    env.update(
        {
            "PATH": str(_bin_dir(tmp_path)),
            "X402_DATA_DIR": str(data),
            "DATABASE_URL": database_url,
            "X402_PORT": str(free_port()),
            "X402_LOG_LEVEL": "warning",
        }
    )
    cmd = [sys.executable, "-m", "x402.service.cli", "serve", "--dev"]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "Traceback" not in text
    said = [ln for ln in text.splitlines() if "npm" in ln]
    assert len(said) == 1, text
    assert "npm is not on PATH" in said[0]
    assert f"npm install --prefix {data / 'anvil'} {ANVIL_NPM_PACKAGE}" in said[0]
    assert not (data / "anvil").exists()


async def _serve_dev(tmp_path: Path, data: Path, database_url: str, path: str) -> str:
    env = {
        "PATH": path,
        "X402_DATA_DIR": str(data),
        "DATABASE_URL": database_url,
        "X402_DEV_ANVIL_PORT": str(free_port()),
        "X402_REQUIRE_API_KEYS": "false",
    }
    os_env_anvil = os.environ.get("X402_ANVIL_BIN")
    assert os_env_anvil is None or not os_env_anvil, "the test needs X402_ANVIL_BIN unset"
    async with (
        x402_serve("--dev", env=env, port=free_port(), timeout=120, cwd=str(tmp_path)) as svc,
        aiohttp.ClientSession() as s,
        s.get(svc.base_url + "/.well-known/x402") as r,
    ):
        assert (await r.json())["dev"]["network"] == "eip155:31337"
    return svc.text()


@pytest.mark.slow
async def test_serve_dev_installs_anvil_from_npm_once(tmp_path: Path, database_url: str) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed on this machine")
    data = tmp_path / "data"
    path = str(_bin_dir(tmp_path, "node", "npm", "sh"))
    first = await _serve_dev(tmp_path, data, database_url, path)
    installing = [ln for ln in first.splitlines() if "installing" in ln]
    assert len(installing) == 1, first
    assert json.loads(installing[0])["event"] == "anvil_install"
    assert f"{ANVIL_NPM_PACKAGE} from npm into {data / 'anvil'}" in installing[0]
    assert "Traceback" not in first
    assert (data / "anvil" / "node_modules" / "@foundry-rs").is_dir()
    # the next start finds the installed one and says nothing about it
    second = await _serve_dev(tmp_path, data, database_url, path)
    assert "installing" not in second
    assert "dev chain (anvil) is up" in second
