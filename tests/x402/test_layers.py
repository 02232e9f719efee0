"""The layers hold: the import-linter contract passes, and the libraries load without the service roof."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contract_is_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail("import-linter is a dev dependency: run scripts/bootstrap")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_libraries_and_domain_load_without_the_service_roof() -> None:
    code = (
        "import sys\n"
        "import x402, x402.client, x402.paywall, x402.facilitator.remote, x402.cache, x402.wire\n"
        "import chains.registry, chains.evm.adapter, chains.solana.adapter, risk, risk.build, wallets.service\n"
        "print(sorted(m for m in sys.modules if m.startswith('x402.service')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
