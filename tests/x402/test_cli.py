"""The ``x402`` command line dispatches its subcommands."""

from __future__ import annotations

import subprocess
import sys


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
