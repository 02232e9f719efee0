"""The official x402 Python SDK (PyPI) in its own virtualenv, created once and reused while its pins are unchanged."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: ``x402[mcp]`` 2.25.0 ships ``x402.mcp.x402MCPSession``. It declares ``mcp>=1.0.0`` but passes its read timeouts as
#: ``timedelta`` (the mcp 1.x API): with mcp 2.x every paid call fails (``float + timedelta``), so mcp stays on 1.x.
MCP_REQUIREMENTS = ("x402[evm,mcp]==2.25.0", "mcp>=1.20,<2", "coincurve")
MCP_VENV = ROOT / "tests" / "interop" / ".venv-official-mcp"


def _run(*cmd: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def official_python(venv: Path = MCP_VENV, requirements: tuple[str, ...] = MCP_REQUIREMENTS) -> Path:
    """The python of ``venv`` with ``requirements`` installed (re-created when they or the Python version change).

    Blocking (venv + pip): call it through ``asyncio.to_thread``.
    """
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(json.dumps([list(requirements), platform.python_version()]).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run(sys.executable, "-m", "venv", str(venv))
    _run(str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements)
    stamp.write_text(digest + "\n")
    return python
