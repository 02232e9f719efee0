"""Scale-out benchmark: /verify throughput of 1 and 2 separate ``x402 serve`` processes on one Postgres and one Redis.

One run, everything on this box:

1. anvil + the dev token (``start_devchain``), pinned to its own CPU budget: every anvil thread's affinity is set to
   ``--anvil-cpus`` (default CPU 1 of a 2-core box; ``all`` leaves it unpinned). The servers, Postgres, Redis and
   wrk are not pinned: they share every core, anvil's included (pinning them too would leave one core for 2
   servers, Postgres and wrk, which measures nothing about scale-out);
2. the local Postgres (a scratch database, migrated once, dropped afterwards) and the local Redis (``--redis-url``,
   default db 13) shared by every server process;
3. two separate ``x402 serve`` processes (not ``--workers``: each its own port, own pools, same database and Redis),
   started up front; N=1 loads the first only, N=2 both;
4. the load: one ``wrk`` per loaded process with bench/verify_wrk.lua (the pre-signed /verify bodies of
   bench/verify.py, every answer checked ``"isValid":true``); total connections and wrk threads stay the same for
   N=1 and N=2 (split evenly), so only the number of server processes changes;
5. ``--rounds`` alternating N=1 / N=2 rounds, the best of each; CPU per component from /proc during the best round:
   server processes, anvil, Postgres (the backends serving the scratch database), Redis (the whole
   ``redis-server``), wrk, and the rest.

Figures are printed, and with ``--write-docs`` written to docs/benchmarks.md (section
``## Scale-out (bench/scaleout.py)``). Usage: ``.venv/bin/python bench/scaleout.py [--quick] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import os
import re
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.verify import (  # noqa: E402  (bench/verify.py: processes, readiness, signed bodies, wrk, CPU from /proc)
    _STARTED,
    X402_BIN,
    Procs,
    _stat,
    anvil_process_id,
    children_cpu,
    cpu_seconds,
    ensure_wrk,
    free_port,
    machine_note,
    make_bodies,
    our_env,
    probe_verify,
    run_bench,
    run_wrk,
    say,
    system_busy,
    teardown,
    wait_http,
)
from chains.evm.devchain import start_devchain  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Scale-out (bench/scaleout.py)"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/13"
COMPONENTS = ("servers", "anvil", "postgres", "redis", "wrk", "other")


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[tuple[str, str]]:
    """A fresh, migrated database on the local Postgres (DATABASE_URL's server), dropped afterwards."""
    from tests.harness.services import with_database
    from x402.service.storage.db import migrate_url

    server = os.environ.get("DATABASE_URL") or LOCAL_PG
    name = f"x402_scaleout_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server, name)
        await migrate_url(url)
        yield url, name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def pin(pid: int, cpus: set[int]) -> int:
    """Set the CPU affinity of every thread of ``pid``; the number of threads pinned."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)
            n += 1
    return n


def cpu_by_name(names: tuple[str, ...]) -> float:
    """CPU seconds so far of every process whose command name is one of ``names`` (Postgres backends, Redis)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if Path(f"/proc/{entry}/comm").read_text().strip() in names:
                st = _stat(entry)
                total += st[1] if st else 0.0
    return total


@dataclasses.dataclass
class Run:
    n: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    invalid: int
    socket_errors: int
    per_process: list[float]
    cpu: dict[str, float]  # cores busy on average, per component
    all_rps: list[float] = dataclasses.field(default_factory=list)

    @property
    def void(self) -> bool:
        return self.invalid > 0 or self.socket_errors > 0 or self.requests == 0


def cpu_of(pids: set[int]) -> dict[int, float]:
    """CPU seconds so far of each live process in ``pids``."""
    out = {}
    for pid in pids:
        st = _stat(str(pid))
        if st is not None:
            out[pid] = st[1]
    return out


async def backends(admin: asyncpg.Connection, db: str) -> set[int]:
    """Postgres backend processes serving the scratch database (the servers' pools)."""
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", db)
    return {int(r["pid"]) for r in rows}


async def measure(
    wrk: str,
    n: int,
    servers: list[tuple[str, int]],
    bodies: Path,
    args: argparse.Namespace,
    anvil_pid: int | None,
    pg: tuple[asyncpg.Connection, str],
) -> Run:
    """One wrk per loaded server, all at once; total connections and threads split evenly over the N servers."""
    loaded = servers[:n]
    conns = max(1, args.connections // n)
    threads = max(1, args.threads // n)

    def snapshot() -> dict[str, float]:
        return {
            "servers": sum(cpu_seconds(pid=pid) for _, pid in loaded),
            "anvil": cpu_seconds(pid=anvil_pid) if anvil_pid else 0.0,
            "postgres": 0.0,  # per backend, below
            "redis": cpu_by_name(("redis-server",)),
            "wrk": children_cpu(),
            "busy": system_busy(),
        }

    await asyncio.gather(
        *(run_wrk(wrk, base, bodies, connections=conns, threads=threads, duration=args.warmup) for base, _ in loaded)
    )
    pg_before = cpu_of(await backends(*pg))
    before, wall0 = snapshot(), time.monotonic()
    outs = await asyncio.gather(
        *(run_wrk(wrk, base, bodies, connections=conns, threads=threads, duration=args.duration) for base, _ in loaded)
    )
    after, wall = snapshot(), max(time.monotonic() - wall0, 1e-9)
    pg_after = cpu_of(await backends(*pg) | set(pg_before))
    after["postgres"] = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
    cpu = {k: (after[k] - before[k]) / wall for k in before}
    cpu["other"] = max(0.0, cpu.pop("busy") - sum(cpu[k] for k in COMPONENTS if k != "other"))
    per = [f["requests"] / (f["duration_us"] / 1e6) for f, _, _ in outs]
    fields = [f for f, _, _ in outs]
    return Run(
        n=n,
        rps=sum(per),
        p50_ms=max(f["p50_us"] for f in fields) / 1000,  # the worse process's percentile
        p99_ms=max(f["p99_us"] for f in fields) / 1000,
        requests=sum(f["requests"] for f in fields),
        invalid=sum(f["invalid"] for f in fields),
        socket_errors=sum(f[k] for f in fields for k in ("err_connect", "err_read", "err_write", "err_timeout")),
        per_process=per,
        cpu=cpu,
    )


async def bench(args: argparse.Namespace) -> list[Run]:
    from x402.logs import configure_logging

    configure_logging("warning", "console")  # the migration runs in this process
    wrk = ensure_wrk()
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="x402-scaleout-"))
    anvil = None
    runs: list[Run] = []
    try:
        async with scratch_database() as (database_url, db_name):
            anvil, chain = await start_devchain()
            anvil_pid = anvil_process_id(anvil)
            if anvil_pid is not None:
                _STARTED[anvil_pid] = False
                if args.anvil_cpus is not None:
                    say(f"anvil pinned to CPU {sorted(args.anvil_cpus)} ({pin(anvil_pid, args.anvil_cpus)} threads)")
            bodies, _ = await asyncio.to_thread(make_bodies, chain, args.payloads)
            bodies_file = tmp / "bodies.jsonl"
            bodies_file.write_text("\n".join(bodies) + "\n")
            servers: list[tuple[str, int]] = []
            for i in range(max(args.processes)):
                port = free_port()
                env = our_env(chain, database_url, tmp / f"data-{i}")
                env.update({"X402_MIGRATE_ON_START": "0", "REDIS_URL": args.redis_url})
                log = tmp / f"server-{i}.log"
                argv = [str(X402_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
                proc = await procs.start(f"server {i}", argv, env=env, log=log)
                base = f"http://127.0.0.1:{port}"
                await wait_http(f"{base}/readyz", proc, log, f"x402 serve #{i + 1}")
                await probe_verify(base, bodies[0], f"x402 serve #{i + 1}")
                servers.append((base, proc.pid))
                say(f"x402 serve #{i + 1} on :{port} (pid {proc.pid})")
            admin = await asyncpg.connect(database_url)
            try:
                for rnd in range(1, args.rounds + 1):
                    for n in args.processes:
                        r = await measure(wrk, n, servers, bodies_file, args, anvil_pid, (admin, db_name))
                        runs.append(r)
                        cpu = " ".join(f"{k} {r.cpu[k]:.2f}" for k in COMPONENTS)
                        say(
                            f"round {rnd} N={n}: {r.rps:8,.0f} verifies/s  p99 {r.p99_ms:6.2f} ms  "
                            f"invalid {r.invalid}  socket errors {r.socket_errors}  CPU cores: {cpu}"
                        )
            finally:
                await admin.close()
    finally:
        await teardown(procs, anvil, tmp)
    return best_of(runs)


def best_of(runs: list[Run]) -> list[Run]:
    out = []
    for n in sorted({r.n for r in runs}):
        mine = [r for r in runs if r.n == n]
        best = dataclasses.replace(max(mine, key=lambda r: r.rps))
        best.invalid = sum(r.invalid for r in mine)
        best.socket_errors = sum(r.socket_errors for r in mine)
        best.all_rps = [r.rps for r in mine]
        out.append(best)
    return out


def why(runs: list[Run]) -> str:
    """A sentence on where the scaling stops, from the CPU figures of the largest N."""
    top = runs[-1]
    busy = sum(top.cpu.values())
    cores = len(os.sched_getaffinity(0))
    parts = ", ".join(f"{k} {top.cpu[k]:.2f}" for k in COMPONENTS)
    per = ", ".join(f"{k} {cpu_ms(top, k):.2f} ms" for k in ("servers", "postgres", "anvil"))
    if busy >= 0.85 * cores:
        return (
            f"Why it stops there: at N={top.n} the box is saturated, {busy:.2f} of {cores} cores busy ({parts}; "
            "`other` is work outside this benchmark). "
            f"Each verify costs {per} of CPU, and the server processes, Postgres, Redis, anvil and wrk all draw on "
            "the same cores, so a second server process only gets the CPU the first one was not using; N "
            "processes scale only with cores (or machines) for them, Postgres sized to match."
        )
    return (
        f"At N={top.n} the box is not saturated ({busy:.2f} of {cores} cores busy: {parts}; per verify {per}): "
        "the limit is the round trips per verify (Postgres, the anvil simulation) at this connection count; raise "
        "--connections to go further."
    )


def cpu_ms(r: Run, component: str) -> float:
    """Milliseconds of ``component`` CPU per verify."""
    return 1000 * r.cpu[component] / r.rps if r.rps else float("nan")


def render(runs: list[Run], args: argparse.Namespace, command: str) -> str:
    base = runs[0]
    lines = [
        SECTION,
        "",
        f"Measured {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} with `{command}`. Load "
        f"average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        f"- Machine: {machine_note()}.",
        "- Chain: anvil "
        + (
            f"pinned to CPU {','.join(map(str, sorted(args.anvil_cpus)))} (every thread's affinity)"
            if args.anvil_cpus is not None
            else "unpinned"
        )
        + "; servers, Postgres, Redis and wrk unpinned (pinning them away from anvil would leave one core for "
        "everything else on a 2-core box).",
        "- Servers: separate `x402 serve` processes (own port, own DB pool), one Postgres database and one Redis "
        f"({args.redis_url}); `X402_REQUIRE_API_KEYS=0`, `X402_LOG_LEVEL=warning`.",
        f"- Load: one `wrk` per loaded process, {args.connections} connections and {args.threads} wrk threads in "
        f"total split evenly, {args.duration:g} s after a {args.warmup:g} s warm-up, {args.payloads:,} distinct "
        "pre-signed /verify bodies (bench/verify.py's) round-robin, every answer checked valid. "
        f"{args.rounds} alternating round(s), the best of each N.",
        "",
        "| processes | verifies/s | × N=1 | req/s per process | worst p50 / p99 ms | invalid | socket errors "
        "| CPU cores: servers / anvil / Postgres / Redis / wrk / other | CPU ms per verify: servers / Postgres "
        "| verifies/s of each round |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        void = " **VOID**" if r.void else ""
        per = " + ".join(f"{x:,.0f}" for x in r.per_process)
        lines.append(
            f"| {r.n}{void} | {r.rps:,.0f} | {r.rps / base.rps:.2f}x | {per} "
            f"| {r.p50_ms:.2f} / {r.p99_ms:.2f} | {r.invalid} | {r.socket_errors} "
            f"| {' / '.join(f'{r.cpu[k]:.2f}' for k in COMPONENTS)} "
            f"| {cpu_ms(r, 'servers'):.2f} / {cpu_ms(r, 'postgres'):.2f} "
            f"| {' / '.join(f'{x:,.0f}' for x in r.all_rps)} |"
        )
    lines += [
        "",
        f"N=2 / N=1 = **{runs[-1].rps / base.rps:.2f}x**. " + why(runs),
        "",
        "The CPU columns are average cores busy during the best round (from /proc): the server processes, anvil, "
        "the Postgres backends serving the scratch database, the whole redis-server, wrk; `other` is everything "
        "else on the box (Postgres background processes, other jobs: a high value means a noisy figure). "
        "CPU ms per verify survives a loaded box better "
        "than verifies/s.",
        "",
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Replace (or append) only this benchmark's section."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text.rstrip("\n") + "\n")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="short runs (5 s, 1 round): indicative only")
    p.add_argument("--processes", default="1,2", help="comma-separated numbers of server processes (default 1,2)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections in total (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads in total (default 2)")
    p.add_argument("--duration", type=float, help="seconds per measured run (default 10, quick 5)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each run (default 2)")
    p.add_argument("--rounds", type=int, help="alternating rounds (default 2, quick 1)")
    p.add_argument("--payloads", type=int, default=2000, help="distinct pre-signed /verify bodies (default 2000)")
    p.add_argument("--anvil-cpus", default="1", help="CPUs anvil is pinned to, e.g. 1 or 0-1; 'all': unpinned")
    p.add_argument("--redis-url", default=LOCAL_REDIS, help=f"Redis every server shares (default {LOCAL_REDIS})")
    p.add_argument("--write-docs", action="store_true", help="write the section into docs/benchmarks.md")
    args = p.parse_args(argv)
    args.processes = sorted({int(x) for x in args.processes.split(",") if x.strip()})
    args.duration = args.duration or (5.0 if args.quick else 10.0)
    args.rounds = max(1, args.rounds or (1 if args.quick else 2))
    if args.anvil_cpus == "all":
        args.anvil_cpus = None
    else:
        cpus: set[int] = set()
        for part in args.anvil_cpus.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        if not cpus <= os.sched_getaffinity(0):
            p.error(f"--anvil-cpus {args.anvil_cpus}: this box has CPUs {sorted(os.sched_getaffinity(0))}")
        args.anvil_cpus = cpus
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/scaleout.py", *argv])

    async def go() -> int:
        runs = await bench(args)
        section = render(runs, args, command)
        say("")
        say(section)
        if args.write_docs:
            write_docs(section)
            say(f"updated {DOCS.relative_to(ROOT)}")
        return 1 if any(r.void for r in runs) else 0

    return run_bench(go)


if __name__ == "__main__":
    raise SystemExit(main())
