"""The ``x402`` command line dispatches its subcommands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _x402(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "x402.cli", *args], capture_output=True, text=True, timeout=60)


def test_risk_subcommand_checks_rules() -> None:
    ok = _x402("risk", "check-rule", "velocity_1m > 5 and amount > 1000000")
    assert ok.returncode == 0, ok.stderr
    assert '"ok": true' in ok.stdout
    bad = _x402("risk", "check-rule", "__import__('os')")
    assert bad.returncode != 0
    assert "rule_syntax_error" in bad.stderr


def test_version_and_help() -> None:
    out = _x402("--version")
    assert out.returncode == 0
    assert "x402-service" in out.stdout
    out = _x402("--help")
    for cmd in ("serve", "migrate", "tenants", "keys", "audit", "wallets", "risk"):
        assert cmd in out.stdout


def test_database_commands_use_the_embedded_postgres_without_database_url(embedded_data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["X402_DATA_DIR"] = str(embedded_data_dir)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "x402.cli", *args], capture_output=True, text=True, timeout=120, env=env
        )

    created = run("tenants", "create", "--name", "acme")
    assert created.returncode == 0, created.stderr
    assert "embedded Postgres" in created.stderr
    listed = run("tenants", "list")
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)] == ["acme"]
    # the command's own embedded server is stopped when it ends
    assert not (embedded_data_dir / "pgdata" / "postmaster.pid").exists()
