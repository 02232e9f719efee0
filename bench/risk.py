"""Time the risk stage (RiskEngine.assess): p50/p99 over 10k assessments, in-process vs Redis (+ Postgres).

Usage: .venv/bin/python bench/risk.py [--n 10000] [--redis redis://127.0.0.1:6379/14] [--database-url URL]
Writes the "## Risk (bench/risk.py)" section of docs/benchmarks.md (other sections are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from risk.build import RiskOptions, build_engine  # noqa: E402
from risk.model import RiskContext  # noqa: E402
from risk.store import MemoryRiskStore  # noqa: E402
from x402.cache import Cache, RedisCache  # noqa: E402

SECTION = "## Risk (bench/risk.py)"
CONFIG = {
    "rules": {"velocity": {"max_per_minute": 100, "max_per_hour": 1000}, "large_amount": {"threshold": "5000000"}},
    "custom": [{"name": "burst", "when": "velocity_1m > 50 and amount > 1000000", "action": "require_confirmation"}],
}


def payment(i: int) -> RiskContext:
    return RiskContext(
        network="eip155:8453",
        asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        payer=f"0x{i % 500:040x}",  # 500 payers, so velocity windows and history hit real keys
        pay_to=f"0x{(i % 20) + 1:040x}",
        amount=10_000 + (i % 97) * 13,
        resource=f"https://api.example.com/r{i % 20}",
        payment_id=f"bench-{i}",
    )


async def run(label: str, n: int, cache: Cache | None, pool: asyncpg.Pool | None) -> dict[str, Any]:
    store = MemoryRiskStore()
    await store.put_config(None, CONFIG, actor="bench")
    with tempfile.TemporaryDirectory() as tmp:
        engine = await build_engine(RiskOptions(data_dir=Path(tmp)), pool, cache, store=store)
    for i in range(200):  # warm caches, scripts and connections
        await engine.assess(payment(n + i))
        await engine.record(payment(n + i))
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await engine.assess(payment(i))
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    return {"label": label, "n": n, "p50": q[49], "p99": q[98], "mean": statistics.fmean(samples)}


def write_section(rows: list[dict[str, Any]], note: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = [
        SECTION,
        "",
        "`RiskEngine.assess` per payment, sequential, 10k assessments after 200 warm-up ones (sanctions, lists,",
        "velocity, payer history, amount anomaly, large amount, one custom expression, intent).",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, {note}.",
        "",
        "| setup | n | p50 ms | p99 ms | mean ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['n']} | {r['p50']:.3f} | {r['p99']:.3f} | {r['mean']:.3f} |")
    section = "\n".join(lines) + "\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _m: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--database-url", help="a migrated database (adds the Redis + Postgres row)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = [await run("in-process (no Redis, no Postgres)", args.n, None, None)]
    cache = RedisCache(args.redis)
    await cache.client.flushdb()
    rows.append(await run("Redis velocity + baselines", args.n, cache, None))
    if args.database_url:
        pool = await asyncpg.create_pool(args.database_url, min_size=2, max_size=4)
        await cache.client.flushdb()
        rows.append(await run("Redis + Postgres payer history", args.n, cache, pool))
        await pool.close()
    await cache.client.flushdb()
    await cache.close()
    for r in rows:
        print(f"{r['label']:<40} n={r['n']}  p50={r['p50']:.3f} ms  p99={r['p99']:.3f} ms  mean={r['mean']:.3f} ms")
    if not args.no_write:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        write_section(rows, f"local Redis and Postgres on 127.0.0.1, load average {load} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    asyncio.run(main())
