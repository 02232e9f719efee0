"""Run the Node scripts in ``tests/interop`` (the official x402 TypeScript SDKs) from async tests.

Every script prints one JSON line on stdout as its result and exits non-zero with a message on stderr on failure;
long-running servers print ``{"listening": port}`` once they accept connections and run until killed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
NODE_MODULES = INTEROP_DIR / "node_modules"
_STDERR_KEEP = 200


class NodeScriptError(RuntimeError):
    """A Node script failed, timed out, or printed no JSON result."""


def node_binary() -> str | None:
    """The ``node`` executable on PATH, if any."""
    return shutil.which("node")


def node_available() -> bool:
    """True when ``node`` is on PATH and the interop packages are installed (``scripts/bootstrap``)."""
    return node_binary() is not None and (NODE_MODULES / "@x402" / "core").is_dir()


def require_node() -> str:
    """The ``node`` executable; fails the calling test (never skips) when node or the interop packages are missing."""
    node = node_binary()
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20+ and run scripts/bootstrap", pytrace=False)
    if not (NODE_MODULES / "@x402" / "core").is_dir():
        pytest.fail(
            f"{NODE_MODULES} is missing: run scripts/bootstrap (it runs `npm ci` in tests/interop)", pytrace=False
        )
    return node


def _script_path(script: str) -> Path:
    path = INTEROP_DIR / script
    if not path.is_file():
        raise NodeScriptError(f"no such interop script: {path}")
    return path


def _env(env: Mapping[str, object] | None) -> dict[str, str]:
    out = dict(os.environ)
    out.setdefault("NODE_NO_WARNINGS", "1")
    for key, value in (env or {}).items():
        out[key] = str(value)
    return out


def _last_json_line(stdout: str, what: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise NodeScriptError(f"{what} printed nothing on stdout")
    try:
        result = json.loads(lines[-1])
    except ValueError as exc:
        raise NodeScriptError(f"{what}: last stdout line is not JSON: {lines[-1]!r}") from exc
    if not isinstance(result, dict):
        raise NodeScriptError(f"{what}: result is not a JSON object: {lines[-1]!r}")
    return result


async def _kill(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def run_node(
    script: str,
    *args: str,
    stdin: Mapping[str, Any] | None = None,
    env: Mapping[str, object] | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """Run ``tests/interop/<script>`` with ``args`` (and ``stdin`` as JSON) and return its last stdout line, parsed."""
    return await _run([require_node()], f"node {script}", script, args, stdin, env, timeout)


#: The official PyPI ``x402`` in a venv of its own (``scripts/bootstrap`` makes it from requirements-official.txt).
OFFICIAL_PYTHON = INTEROP_DIR / ".venv-official" / "bin" / "python"


def require_official_python() -> str:
    """The official client's python; fails the calling test (never skips) when its venv is missing."""
    if not OFFICIAL_PYTHON.is_file():
        pytest.fail(f"{OFFICIAL_PYTHON} is missing: run scripts/bootstrap", pytrace=False)
    return str(OFFICIAL_PYTHON)


async def run_official_python(
    script: str, *args: str, env: Mapping[str, object] | None = None, timeout: float = 60
) -> dict[str, Any]:
    """Run ``tests/interop/<script>`` with the official PyPI client's python (isolated: our ``x402`` stays out)."""
    return await _run([require_official_python(), "-I"], f"python {script}", script, args, None, env, timeout)


async def _run(
    program: Sequence[str],
    what: str,
    script: str,
    args: Sequence[str],
    stdin: Mapping[str, Any] | None,
    env: Mapping[str, object] | None,
    timeout: float,
) -> dict[str, Any]:
    proc = await _spawn(script, args, env, asyncio.subprocess.PIPE, program=program)
    data = json.dumps(stdin).encode() if stdin is not None else b""
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), timeout)
    except TimeoutError:
        await _kill(proc, grace=1.0)
        raise NodeScriptError(f"{what} did not finish within {timeout:g} s") from None
    finally:
        if proc.returncode is None:
            await _kill(proc, grace=1.0)
    stderr = err.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise NodeScriptError(f"{what} exited with code {proc.returncode}: {stderr}")
    try:
        return _last_json_line(out.decode("utf-8", "replace"), what)
    except NodeScriptError as exc:
        raise NodeScriptError(f"{exc}; stderr: {stderr}") from None


async def _spawn(
    script: str,
    args: Sequence[str],
    env: Mapping[str, object] | None,
    stdin: int,
    *,
    program: Sequence[str] | None = None,
) -> asyncio.subprocess.Process:
    """``node tests/interop/<script> args`` (or ``program`` instead of node) with piped stdout/stderr."""
    return await asyncio.create_subprocess_exec(
        *(program if program is not None else [require_node()]),
        str(_script_path(script)),
        *args,
        cwd=INTEROP_DIR,
        env=_env(env),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _drain(stream: asyncio.StreamReader, sink: collections.deque[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode("utf-8", "replace"))


@contextlib.asynccontextmanager
async def node_server(
    script: str, env: Mapping[str, object] | None = None, *, startup_timeout: float = 30
) -> AsyncIterator[int]:
    """Start a long-running ``tests/interop/<script>``; yield the port from its ``{"listening": port}`` line.

    The process is killed on exit.
    """
    what = f"node {script}"
    proc = await _spawn(script, (), env, asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_KEEP)
    stdout: collections.deque[str] = collections.deque(maxlen=_STDERR_KEEP)
    drains = [asyncio.create_task(_drain(proc.stderr, stderr))]
    try:
        port = await asyncio.wait_for(_wait_listening(proc, proc.stdout, stdout, stderr, what), startup_timeout)
    except BaseException as exc:
        await _kill(proc, grace=1.0)
        await _finish(drains)
        if isinstance(exc, TimeoutError):
            raise NodeScriptError(
                f"{what} did not print {{'listening': port}} within {startup_timeout:g} s; "
                f"stderr: {''.join(stderr).strip()}"
            ) from None
        raise
    drains.append(asyncio.create_task(_drain(proc.stdout, stdout)))
    try:
        yield port
    except BaseException as exc:
        await _kill(proc)
        await _finish(drains)
        tail = "".join(stderr).strip()
        if tail:
            exc.add_note(f"{what} stderr:\n{tail}")
        raise
    else:
        await _kill(proc)
        await _finish(drains)


async def _finish(tasks: list[asyncio.Task[None]]) -> None:
    """Wait briefly for the output drains of an exited process, then drop them."""
    for task in tasks:
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 1.0)


async def _wait_listening(
    proc: asyncio.subprocess.Process,
    out: asyncio.StreamReader,
    seen: collections.deque[str],
    stderr: collections.deque[str],
    what: str,
) -> int:
    while True:
        raw = await out.readline()
        if not raw:
            await proc.wait()
            raise NodeScriptError(
                f"{what} exited with code {proc.returncode} before listening: {''.join(stderr).strip()}"
            )
        line = raw.decode("utf-8", "replace")
        seen.append(line)
        with contextlib.suppress(ValueError):
            msg = json.loads(line)
            if isinstance(msg, dict) and isinstance(msg.get("listening"), int):
                return int(msg["listening"])
