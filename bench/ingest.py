"""Payment-record ingest through the batched writer: sustained rate, ack latency, and a SIGKILL test.

    .venv/bin/python bench/ingest.py                 # 10 s sustained run + kill test, prints figures
    .venv/bin/python bench/ingest.py --write-docs    # ... and replaces the Ingest section of docs/benchmarks.md

Postgres: BENCH_DATABASE_URL or DATABASE_URL (any database on the server), else postgresql://postgres@127.0.0.1/test.
A scratch database is created, migrated and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from x402.logs import configure_logging  # noqa: E402
from x402.platform.writer import PaymentRecord, PaymentWriter  # noqa: E402
from x402.storage.db import migrate  # noqa: E402
from x402.storage.scope import system_scope  # noqa: E402
from x402.storage.walls import create_walled_pool  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
NETWORKS = ("eip155:8453", "eip155:84532", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")
TENANTS = [uuid.uuid4() for _ in range(20)]


def _with_db(url: str, name: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def record(i: int, rid: uuid.UUID | None = None) -> PaymentRecord:
    """A realistic settle record."""
    return PaymentRecord(
        kind="settle" if i % 3 else "verify",
        status="success" if i % 7 else "failed",
        network=NETWORKS[i % 3],
        tenant_id=TENANTS[i % len(TENANTS)],
        asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        payer=f"0x{i % 5000:040x}",
        pay_to="0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        amount=10_000 + i,
        tx=f"0x{secrets.token_hex(32)}",
        id=rid or uuid.uuid4(),
    )


async def scratch_db(server: str) -> str:
    name = f"x402_bench_ingest_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_db(server, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


async def drop_db(server: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def sustained(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    """``concurrency`` producers each ``await writer.write`` (acknowledged path) for ``seconds``."""
    pool = await create_walled_pool(url, min_size=2, max_size=4)  # the service's pool: role x402_app, RLS on
    writer = PaymentWriter(pool)
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    counter = 0

    async def producer() -> None:
        nonlocal counter
        while time.monotonic() < stop:
            counter += 1
            t = time.perf_counter()
            await writer.write(record(counter))
            latencies.append(time.perf_counter() - t)

    started = time.monotonic()
    await asyncio.gather(*(producer() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    acked = len(latencies)
    # fire-and-forget path: queue 100k records, time until close() has committed them all
    t = time.monotonic()
    for i in range(100_000):
        writer.submit(record(i))
    await writer.close()
    submit_elapsed = time.monotonic() - t
    with system_scope("bench: count every tenant's records"):
        rows = await pool.fetchval("SELECT count(*) FROM payments")
    await pool.close()
    latencies.sort()
    return {
        "acked": acked,
        "seconds": elapsed,
        "rate": acked / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "submit_rate": 100_000 / submit_elapsed,
        "rows": rows,
        "expected_rows": acked + 100_000,
    }


async def child(url: str, concurrency: int) -> None:
    """Write forever, printing each id only after its batch committed (the parent SIGKILLs us)."""
    configure_logging("warning")  # stdout carries the acknowledged ids only; logs go to stderr
    pool = await create_walled_pool(url, min_size=2, max_size=4)  # the service's pool: role x402_app, RLS on
    writer = PaymentWriter(pool)
    acked: list[str] = []
    n = 0

    async def producer() -> None:
        nonlocal n
        while True:
            n += 1
            rid = uuid.uuid4()
            await writer.write(record(n, rid))
            acked.append(str(rid))

    async def printer() -> None:
        out = sys.stdout
        while True:
            await asyncio.sleep(0.01)
            if acked:
                batch = acked[:]
                acked.clear()
                out.write("".join(f"{a}\n" for a in batch))
                out.flush()

    await asyncio.gather(printer(), *(producer() for _ in range(concurrency)))


async def kill_test(url: str, after: float, concurrency: int) -> dict[str, float]:
    """Start a child writer, SIGKILL it mid-run, check every id it acknowledged is in the table."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "child",
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            acked.append(line.decode().strip())

    reader = asyncio.create_task(read())
    await asyncio.sleep(after)
    killed_at = datetime.now(UTC)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    await reader
    conn = await asyncpg.connect(url)
    try:
        present = {
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM payments WHERE id = ANY($1::uuid[])", [uuid.UUID(a) for a in acked]
            )
        }
        total = await conn.fetchval("SELECT count(*) FROM payments")
    finally:
        await conn.close()
    missing = [a for a in acked if a not in present]
    return {
        "acked": len(acked),
        "missing": len(missing),
        "rows": total,
        "killed_at": killed_at.isoformat(timespec="seconds"),
        "exit": proc.returncode or 0,
    }


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    head = "## Ingest (bench/ingest.py)"
    start = current.find(head)
    if start == -1:
        new = current.rstrip("\n") + "\n\n" + text
    else:
        nxt = current.find("\n## ", start + len(head))
        new = current[:start] + text + (current[nxt + 1 :] if nxt != -1 else "")
    path.write_text(new.rstrip("\n") + "\n")


async def main_async(args: argparse.Namespace) -> int:
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_PG
    url = await scratch_db(server)
    try:
        s = await sustained(url, args.seconds, args.concurrency)
        print(
            f"sustained (await write, {args.concurrency} producers): {s['acked']:.0f} acked in {s['seconds']:.1f}s = "
            f"{s['rate']:.0f} records/s; ack latency p50 {s['p50_ms']:.1f} ms p99 {s['p99_ms']:.1f} ms"
        )
        print(
            f"fire-and-forget submit + close: {s['submit_rate']:.0f} records/s; rows {s['rows']} / {s['expected_rows']}"
        )
        await drop_db(server, url)
        url = await scratch_db(server)
        k = await kill_test(url, args.kill_after, args.concurrency)
        print(
            f"kill test: SIGKILL after {args.kill_after}s; {k['acked']} acknowledged ids, {k['missing']} missing; "
            f"{k['rows']} rows in the table (committed but not yet acknowledged rows are extra, never missing)"
        )
    finally:
        await drop_db(server, url)
    ok = s["rate"] >= 10_000 and k["missing"] == 0 and s["rows"] == s["expected_rows"]
    if args.write_docs:
        write_docs(
            f"""## Ingest (bench/ingest.py)

Run {datetime.now(UTC).date()} on {platform.machine()} ({os.cpu_count()} CPUs), Python {platform.python_version()},
Postgres on the same box. `PaymentWriter`: one asyncio queue, flushed by one `INSERT ... SELECT FROM unnest()`
(COPY is refused under row-level security) every 50 ms or 500 rows, through the service's pool (role `x402_app`,
RLS on); `await write()` returns after the batch's COMMIT, `submit()` queues only (flushed on shutdown).
Command: `.venv/bin/python bench/ingest.py --write-docs` (scratch database, migrated, dropped afterwards).

| path | records | time | records/s | ack p50 | ack p99 |
|---|---:|---:|---:|---:|---:|
| `await writer.write()`, {args.concurrency} concurrent producers | {s["acked"]:.0f} | {s["seconds"]:.1f} s \
| **{s["rate"]:.0f}** | {s["p50_ms"]:.1f} ms | {s["p99_ms"]:.1f} ms |
| `submit()` x 100,000 then `close()` | 100000 | {100_000 / s["submit_rate"]:.1f} s | {s["submit_rate"]:.0f} | - | - |

Target >= 10,000 records/s sustained for ~10 s: **{"met" if s["rate"] >= 10_000 else "MISSED"}**.
Rows in the table after the run: {s["rows"]} of {s["expected_rows"]} written.

Kill test: a child process writes with {args.concurrency} producers and prints each id only after `write()` returned;
the parent sends SIGKILL after {args.kill_after} s, then looks every printed id up in Postgres:
**{k["acked"]} acknowledged, {k["missing"]} missing** ({k["rows"]} rows present: records committed whose
acknowledgement had not been printed yet are extra, never missing). Records queued with `submit()` and not yet
flushed are lost on SIGKILL by design (at most ~50 ms of them); a graceful stop flushes them.
"""
        )
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="bench", choices=("bench", "child"))
    p.add_argument("--url", help="(child) database URL")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=2000)
    p.add_argument("--kill-after", type=float, default=3.0)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    runner: Callable[[Coroutine[Any, Any, Any]], Any]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if args.mode == "child":
        runner(child(args.url, args.concurrency))
        return 0
    return int(runner(main_async(args)))


if __name__ == "__main__":
    raise SystemExit(main())
