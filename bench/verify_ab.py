"""Same-conditions A/B of `POST /verify` CPU: two (or more) builds of `x402 serve` loaded AT THE SAME TIME.

bench/verify.py measures servers one after the other, so on a box shared with other jobs each server meets a
different load and the CPU-per-verify figures of one run swing +-10-15%. Here every round runs one wrk per build
concurrently (same anvil, same bodies, same moment), so whatever else runs on the box hits every build alike, and
the per-round comparison holds even when the absolute figures do not. Reported per build: the median over the
rounds of the server's CPU ms per verify (its process group), of its Postgres backends' CPU ms per verify (its own
database), req/s and p99, and in how many rounds it used less server CPU than the first build.

Usage (from the repository root; each checkout needs its own .venv with the service installed):
``.venv/bin/python bench/verify_ab.py --build main=/work/main --build ours=. [--rounds 8] [--duration 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import verify as V  # noqa: E402  (bench/verify.py: processes, databases, wrk, CPU accounting)
from chains.evm.devchain import start_devchain  # noqa: E402


@dataclasses.dataclass
class Round:
    server_ms: float
    pg_ms: float
    rps: float
    p99_ms: float


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Same-conditions CPU A/B of POST /verify across builds of x402 serve.")
    p.add_argument("--build", action="append", required=True, help="name=checkout (a checkout with its own .venv)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured round (default 5)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections per build (default 16)")
    p.add_argument("--payloads", type=int, default=500)
    args = p.parse_args(argv)
    builds = []
    for spec in args.build:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            p.error(f"--build wants name=checkout, got {spec!r}")
        binary = Path(path).resolve() / ".venv" / "bin" / "x402"
        if not binary.exists():
            p.error(f"{binary} not found")
        builds.append((name, binary))
    if len(builds) < 2:
        p.error("give at least two --build")
    args.builds = builds
    return args


async def bench(args: argparse.Namespace) -> int:
    wrk = V.ensure_wrk()
    procs = V.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="x402-bench-verify-ab-"))
    anvil = None
    rounds: dict[str, list[Round]] = {name: [] for name, _ in args.builds}
    try:
        async with V.postgres(tmp) as (database_url, db_source):
            databases = V.Databases(database_url, own=db_source != "DATABASE_URL")
            try:
                anvil, chain = await start_devchain()
                bodies, _ = await asyncio.to_thread(V.make_bodies, chain, args.payloads)
                bodies_file = tmp / "bodies.jsonl"
                bodies_file.write_text("\n".join(bodies) + "\n")
                servers = []
                for name, binary in args.builds:
                    port = V.free_port()
                    log = tmp / f"{name}.log"
                    server_db = await databases.new(name)
                    env = V.our_env(chain, server_db, tmp / "data")
                    argv = [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)]
                    proc = await procs.start(name, argv, env=env, log=log)
                    base = f"http://127.0.0.1:{port}"
                    await V.wait_http(f"{base}/readyz", proc, log, name)
                    await V.probe_verify(base, bodies[0], name)
                    servers.append((name, base, proc, V.database_of(server_db)))
                    V.say(f"started {name} ({binary}) on :{port}")

                def load(duration: float) -> list[asyncio.Future[tuple[dict[str, int], str, str]]]:
                    return [
                        asyncio.ensure_future(
                            V.run_wrk(
                                wrk, base, bodies_file, connections=args.connections, threads=1, duration=duration
                            )
                        )
                        for _, base, _, _ in servers
                    ]

                await asyncio.gather(*load(2.0))  # warm-up
                for rnd in range(1, args.rounds + 1):
                    cpu0 = {name: V.cpu_seconds(pgid=proc.pid) for name, _, proc, _ in servers}
                    pg0 = {name: V.postgres_cpu(db) for name, _, _, db in servers}
                    outs = await asyncio.gather(*load(args.duration))
                    line = []
                    for (name, _, proc, db), (fields, _, _) in zip(servers, outs, strict=True):
                        if fields["invalid"] or not fields["valid"]:
                            raise RuntimeError(f"{name}: not every answer was a valid verify ({fields})")
                        n = fields["requests"]
                        r = Round(
                            server_ms=1000 * (V.cpu_seconds(pgid=proc.pid) - cpu0[name]) / n,
                            pg_ms=1000 * V.postgres_delta(pg0[name], V.postgres_cpu(db)) / n,
                            rps=n / (fields["duration_us"] / 1e6),
                            p99_ms=fields["p99_us"] / 1000,
                        )
                        rounds[name].append(r)
                        line.append(f"{name} {r.server_ms:.3f} + pg {r.pg_ms:.3f} ms, {r.rps:,.0f} req/s")
                    V.say(f"round {rnd}/{args.rounds}: " + " | ".join(line))
            finally:
                await procs.close()
                await databases.drop_all()
    finally:
        await V.teardown(procs, anvil, tmp)

    first = args.builds[0][0]
    V.say(f"\nmedian of {args.rounds} rounds, {args.connections} connections per build, all builds loaded at once:")
    V.say(f"| build | server CPU ms per verify | Postgres CPU ms per verify | req/s | p99 ms | rounds below {first} |")
    V.say("|---|---:|---:|---:|---:|---:|")
    for name, rs in rounds.items():
        below = sum(r.server_ms < f.server_ms for r, f in zip(rs, rounds[first], strict=True))
        V.say(
            f"| {name} | {statistics.median(r.server_ms for r in rs):.3f}"
            f" | {statistics.median(r.pg_ms for r in rs):.3f} | {statistics.median(r.rps for r in rs):,.0f}"
            f" | {statistics.median(r.p99_ms for r in rs):.1f}"
            f" | {'-' if name == first else f'{below}/{len(rs)}'} |"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    code = V.run_bench(lambda: bench(args))
    V.say(f"({time.monotonic() - started:.0f} s)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
