"""Benchmark the cost of row-level security (the second tenant wall) on `POST /verify` and `GET /v1/payments`.

One run, both servers side by side on the same box and database (noise here is about +-15% run to run, so only the
ratio of one run means anything):

1. anvil + the dev token, Postgres (DATABASE_URL, else the local server, else an embedded one), a scratch database;
2. two services from this script (``--serve on|off``): the same app, API keys required, one with row-level
   security as it ships (x402_app role, per-checkout tenant scope), one built with ``row_security=False``
   (connecting role, no scope hook: the application's own tenant filters only);
3. a bench tenant on an unlimited tier with a verify key; 100,000 payment records of 20 tenants in the table;
4. ``wrk`` rounds alternating over the servers: POST /verify (valid EIP-3009 payloads, as bench/verify.py) and
   GET /v1/payments?limit=50 (the tenant's newest records), best round of each cell;
5. the ratio with / without RLS printed and, with ``--write-docs``, written to docs/benchmarks.md.

Usage: ``.venv/bin/python bench/rls.py [--duration 8] [--rounds 3] [--write-docs]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import verify as vb  # noqa: E402
from chains.evm.devchain import start_devchain  # noqa: E402

LUA = ROOT / "bench" / "rls_wrk.lua"
SECTION = "## Row-level security cost (bench/rls.py)"
TARGET = 0.05
TENANTS = 20
ROWS_PER_TENANT = 5_000
APP_NAME = "x402-bench-rls-"


def serve(mode: str) -> int:
    """Child mode: one service process from the environment, with row-level security on or off."""
    from chains.registry import load_factories
    from x402.logs import configure_logging
    from x402.server import _stop_event, run, run_app
    from x402.settings import load_settings

    settings = load_settings().with_(row_security=mode == "on", migrate_on_start=mode == "on")
    configure_logging(settings.log_level, settings.log_format)
    load_factories()

    async def go() -> int:
        await run_app(settings, _stop_event())
        return 0

    return run(go)


async def run_wrk(wrk: str, base: str, path: str, *, auth: str, connections: int, duration: float, body: str) -> Any:
    """One wrk run; (requests/s, p50 ms, p99 ms, ok answers, other answers)."""
    argv = [wrk, "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(LUA), base, "--", path, auth]
    argv.append(body)
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await proc.communicate())[0].decode(errors="replace")
    m = re.search(r"^BENCH_RESULT (.*)$", out, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed:\n{out[-2000:]}")
    f = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    secs = f["duration_us"] / 1e6
    return f["ok"] / secs, f["p50_us"] / 1000, f["p99_us"] / 1000, f["ok"], f["bad"]


async def populate(url: str, bench_tenant: str) -> None:
    """TENANTS tenants x ROWS_PER_TENANT payment records (the bench tenant among them), as the superuser."""
    conn = await asyncpg.connect(url)
    try:
        tenants = [bench_tenant] + [str(uuid.uuid4()) for _ in range(TENANTS - 1)]
        for t in tenants:
            await conn.execute(
                """INSERT INTO payments (id, tenant_id, kind, status, network, asset, payer, pay_to, amount, created_at)
                   SELECT gen_random_uuid(), $1::uuid, 'verify', 'valid', 'eip155:31337', '0xasset', '0xpayer',
                          '0xpayto', 10000, now() - (g || ' seconds')::interval
                   FROM generate_series(1, $2) g""",
                t,
                ROWS_PER_TENANT,
            )
        await conn.execute("ANALYZE payments")
    finally:
        await conn.close()


async def bench(args: argparse.Namespace) -> int:
    wrk = vb.ensure_wrk()
    procs = vb.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="x402-bench-rls-"))
    anvil = None
    results: dict[tuple[str, str], list[Any]] = {}
    queries: dict[str, float] = {}
    try:
        async with vb.postgres(tmp) as (server_url, db_source):
            name = f"x402_bench_rls_{secrets.token_hex(4)}"
            admin = await asyncpg.connect(server_url)
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            parts = urlsplit(server_url)
            url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
            try:
                anvil, chain = await start_devchain()
                bodies, _ = await asyncio.to_thread(vb.make_bodies, chain, args.payloads)
                bodies_file = tmp / "bodies.jsonl"
                bodies_file.write_text("\n".join(bodies) + "\n")
                servers: list[tuple[str, str, int]] = []
                for mode in ("on", "off"):  # "on" first: it migrates the scratch database
                    port = vb.free_port()
                    # application_name marks the server's Postgres backends, whose CPU counts towards its requests
                    env = vb.our_env(chain, f"{url}?application_name={APP_NAME}{mode}", tmp / "data", keyed=True)
                    env.update({"X402_HOST": "127.0.0.1", "X402_PORT": str(port)})
                    log = tmp / f"rls-{mode}.log"
                    proc = await procs.start(mode, [sys.executable, __file__, "--serve", mode], env=env, log=log)
                    base = f"http://127.0.0.1:{port}"
                    await vb.wait_http(f"{base}/readyz", proc, log, f"service (RLS {mode})")
                    servers.append((mode, base, proc.pid))
                auth = await vb.make_api_key(servers[0][1])
                probe = await asyncpg.connect(server_url)
                tenant = await _tenant_of(url)
                await populate(url, tenant)
                for _, base, _ in servers:  # warm-up: caches, prepared statements, JIT of nothing
                    await run_wrk(wrk, base, "/verify", auth=auth, connections=8, duration=2, body=str(bodies_file))
                    await run_wrk(wrk, base, "/v1/payments?limit=50", auth=auth, connections=8, duration=2, body="")
                # each round measures one endpoint on both servers back to back (order alternating), so a burst of
                # other work on the box mostly lands on both sides of a pair; the verdict is the median pair ratio
                for rnd in range(args.rounds):
                    for what, path, body in (
                        ("verify", "/verify", str(bodies_file)),
                        ("payments", "/v1/payments?limit=50", ""),
                    ):
                        for mode, base, pid in servers if rnd % 2 == 0 else servers[::-1]:
                            vb.say(f"round {rnd + 1}/{args.rounds}: {what}, RLS {mode}")
                            before = await cpu(probe, mode, pid)
                            r = await run_wrk(
                                wrk, base, path, auth=auth, connections=args.connections, duration=args.duration,
                                body=body,
                            )  # fmt: skip
                            used = [b - a for a, b in zip(before, await cpu(probe, mode, pid), strict=True)]
                            results.setdefault((what, mode), []).append((*r, *(u / max(r[3], 1) for u in used)))
                await probe.close()
                queries = await query_level(url, tenant, args.queries)
            finally:
                await procs.close()
                admin = await asyncpg.connect(server_url)
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
    finally:
        if anvil is not None:
            await anvil.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    section = render(results, args, db_source, queries)
    vb.say("")
    vb.say(section)
    if args.write_docs:
        write_docs(section)
        vb.say("updated docs/benchmarks.md")
    bad = any(r[4] for rs in results.values() for r in rs)
    return 1 if bad else 0


async def query_level(url: str, tenant: str, n: int) -> dict[str, float]:
    """Median latency (us) of the payments-list statement alone, sequential, interleaved in blocks of 100.

    *on*: the service's walled pool in the tenant's scope (role x402_app, policies, scope hook); *off*: a plain pool
    as the connecting superuser. Both run the statement the list handler runs.
    """
    from x402.storage.scope import tenant_scope
    from x402.storage.walls import create_walled_pool

    q = "SELECT * FROM payments WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    tid = uuid.UUID(tenant)
    pools = {
        "on": await create_walled_pool(url, min_size=1, max_size=1),
        "off": await asyncpg.create_pool(url, min_size=1, max_size=1),
    }
    times: dict[str, list[float]] = {"on": [], "off": []}
    try:
        with tenant_scope(tenant):
            for block in range(n // 100 + 2):
                for mode, pool in pools.items():
                    for _ in range(100):
                        t0 = time.perf_counter()
                        await pool.fetch(q, tid, 51)
                        if block >= 2:  # two warm-up blocks
                            times[mode].append(time.perf_counter() - t0)
    finally:
        for pool in pools.values():
            await pool.close()
    return {mode: statistics.median(ts) * 1e6 for mode, ts in times.items()}


async def cpu(probe: Any, mode: str, pid: int) -> tuple[float, float]:
    """CPU seconds so far of the server process and of its Postgres backends (by application_name)."""
    rows = await probe.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1", APP_NAME + mode)
    backends = sum(vb.cpu_seconds(pid=r["pid"]) for r in rows)
    return vb.cpu_seconds(pgid=pid), backends


async def _tenant_of(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SELECT id FROM tenants WHERE name = 'bench'"))
    finally:
        await conn.close()


def render(
    results: dict[tuple[str, str], list[Any]], args: argparse.Namespace, db_source: str, queries: dict[str, float]
) -> str:
    rows = [
        "| endpoint | RLS | req/s (best round) | p50 ms | p99 ms | CPU ms/request: server + Postgres = total "
        "(median of rounds) | req/s of each round | non-200 |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    verdicts = []
    for what, label in (("verify", "POST /verify"), ("payments", "GET /v1/payments?limit=50")):
        best, cpu_total = {}, {}
        for mode in ("off", "on"):
            runs = results[(what, mode)]
            b = max(runs, key=lambda r: r[0])
            best[mode] = b
            srv = statistics.median(r[5] for r in runs) * 1000
            pg = statistics.median(r[6] for r in runs) * 1000
            cpu_total[mode] = statistics.median((r[5] + r[6]) for r in runs) * 1000
            rounds = " / ".join(f"{r[0]:,.0f}" for r in runs)
            bad = sum(r[4] for r in runs)
            rows.append(
                f"| {label} | {mode} | {b[0]:,.0f} | {b[1]:.2f} | {b[2]:.2f} | "
                f"{srv:.3f} + {pg:.3f} = {cpu_total[mode]:.3f} | {rounds} | {bad} |"
            )
        pairs = list(zip(results[(what, "on")], results[(what, "off")], strict=True))
        cpu_ratio = statistics.median((on[5] + on[6]) / (off[5] + off[6]) for on, off in pairs)
        rps_ratio = statistics.median(on[0] / off[0] for on, off in pairs)
        ok = "ok" if cpu_ratio - 1 < TARGET else "OVER"
        verdicts.append(
            f"- {label}: CPU per request with RLS = {cpu_ratio:.3f} x without ({cpu_ratio - 1:+.1%}): **{ok}**; "
            f"req/s with RLS = {rps_ratio:.3f} x without (median of the {len(pairs)} back-to-back pairs)"
        )
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {date} with `.venv/bin/python bench/rls.py --rounds {args.rounds} --duration {args.duration:g}"
            f" --connections {args.connections} --write-docs`.",
            "",
            f"- {vb.machine_note()}; Postgres: {db_source}.",
            "- Both servers: one process, API keys required, one tenant key on an unlimited tier, same database with "
            f"{TENANTS} tenants x {ROWS_PER_TENANT:,} payment records (plus what the /verify runs add). *on* = as "
            "shipped (x402_app role, tenant scope written on each checkout, tenant_* policies); "
            "*off* = the same app with `row_security=False` (connecting superuser, no scope hook).",
            f"- wrk `-t2 -c{args.connections} -d{args.duration:g}s`; each round runs one endpoint on both servers "
            "back to back (order alternating); /verify bodies are valid EIP-3009 payloads (as bench/verify.py).",
            "",
            *rows,
            "",
            f"Target: RLS costs < {TARGET:.0%} on both. Judged on CPU per request (server process plus the Postgres "
            "backends serving it, from /proc), median of the back-to-back pairs, which other load on a shared box "
            "disturbs far less than req/s:",
            "",
            *verdicts,
            "",
            f"The list statement alone ({args.queries:,} sequential runs per side through a one-connection pool, "
            "checkout included, interleaved): median "
            f"{queries['on']:.0f} us with RLS (tenant scope, x402_app) vs {queries['off']:.0f} us without "
            f"({queries['on'] / queries['off'] - 1:+.1%}).",
            "",
        ]
    )


def write_docs(section: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    text = docs.read_text()
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section.rstrip() + "\n" + (text[end:] if end >= 0 else "")
    docs.write_text(text.rstrip() + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--serve", choices=("on", "off"), help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--payloads", type=int, default=2000)
    p.add_argument("--queries", type=int, default=3000)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    if args.serve:
        return serve(args.serve)
    started = time.perf_counter()
    code = asyncio.run(bench(args))
    vb.say(f"({time.perf_counter() - started:.0f} s)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
