"""Benchmark usage ingestion: events/s through ``POST /v1/events`` from one process, against a bare COPY.

Set-up: a fresh migrated database (DATABASE_URL, else the local test server, else embedded Postgres); the service
app (API keys on, row-level security on) served on loopback in this process; one tenant and key. Measured: batches
of 1,000 events posted over HTTP by ``--lanes`` concurrent senders until ``--events`` were accepted (validation,
the walled pool, one ``unnest`` insert with ``ON CONFLICT`` per batch, the threshold check and NOTIFY). Baseline,
same run: the same rows sent with ``COPY`` (asyncpg ``copy_records_to_table``) into an unwalled scratch table of
the same shape, nothing else. Figures go to docs/benchmarks.md (section ``## Usage ingestion (bench/usage.py)``).

Usage: ``.venv/bin/python bench/usage.py [--events N] [--lanes L] [--rounds R]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import database, serve, write_section  # noqa: E402
from x402.logs import configure_logging  # noqa: E402
from x402.service.app import create_app  # noqa: E402
from x402.service.settings import Settings  # noqa: E402

SECTION = "## Usage ingestion (bench/usage.py)"
TARGET = 10_000.0
TOKEN = secrets.token_urlsafe(32)  # the operator token of this run
BATCH = 1000


def events(round_no: int, start: int, n: int) -> list[dict[str, object]]:
    """``n`` distinct events (ids unique per round)."""
    return [
        {"id": f"r{round_no}-e{i}", "customer": f"cus_{i % 97}", "meter": "tokens", "value": i % 1000 + 1}
        for i in range(start, start + n)
    ]


async def baseline(db: str, round_no: int, total: int) -> float:
    """Bare COPY of the same rows into an unwalled scratch table."""
    conn = await asyncpg.connect(db)
    try:
        table = f"usage_scratch_{round_no}"
        await conn.execute(f"CREATE TABLE {table} (LIKE usage_events INCLUDING DEFAULTS)")
        now = datetime.now(UTC)
        rows = [(None, e["id"], e["customer"], e["meter"], e["value"], now, "{}") for e in events(round_no, 0, total)]
        columns = ["tenant_id", "id", "customer", "meter", "value", "ts", "properties"]
        began = time.perf_counter()
        for i in range(0, total, BATCH):
            await conn.copy_records_to_table(table, records=rows[i : i + BATCH], columns=columns)
        return total / (time.perf_counter() - began)
    finally:
        await conn.close()


async def ours(url: str, key: str, round_no: int, total: int, lanes: int) -> float:
    """Events/s accepted through POST /v1/events by ``lanes`` concurrent senders."""
    bodies = [json.dumps({"events": events(round_no, i, BATCH)}).encode() for i in range(0, total, BATCH)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def lane(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as r:
                doc = await r.json()
                assert r.status == 200, doc
                accepted += len(doc["accepted"])

    async with aiohttp.ClientSession() as session:
        began = time.perf_counter()
        await asyncio.gather(*(lane(session) for _ in range(lanes)))
        elapsed = time.perf_counter() - began
    assert accepted == total, (accepted, total)
    return total / elapsed


async def run(args: argparse.Namespace) -> str:
    configure_logging("warning", "console")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        async with database(Path(tmp)) as db:
            settings = Settings(database_url=db, require_api_keys=True, admin_token=TOKEN, log_level="warning")
            runner, url = await serve(create_app(settings))
            try:
                async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
                    async with s.post(f"{url}/v1/tenants", json={"name": "bench", "tier": "enterprise"}) as r:
                        tenant = (await r.json())["id"]
                    async with s.post(f"{url}/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}) as r:
                        key = (await r.json())["key"]
                await ours(url, key, 0, 2 * BATCH, args.lanes)  # warm-up
                for n in range(1, args.rounds + 1):
                    base = await baseline(db, n, args.events)
                    mine = await ours(url, key, n, args.events, args.lanes)
                    rows.append((base, mine))
            finally:
                await runner.cleanup()
    lines = [
        SECTION,
        "",
        f"{args.events:,} events per round in batches of {BATCH:,} over HTTP from {args.lanes} concurrent senders "
        "into one service process (API keys and row-level security on; per-event validation, one `unnest` insert "
        "`ON CONFLICT DO NOTHING RETURNING` per batch, threshold check, NOTIFY). Baseline, same run: the same rows "
        "by bare `COPY` into an unwalled scratch table, no HTTP.",
        "",
        "| round | bare COPY (rows/s) | POST /v1/events (events/s) | ratio | target 10,000/s |",
        "|---|---|---|---|---|",
    ]
    for i, (base, mine) in enumerate(rows, 1):
        ok = "met" if mine >= TARGET else "missed"
        lines.append(f"| {i} | {base:,.0f} | {mine:,.0f} | {mine / base:.2f} | {ok} |")
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs while measured), Python "
        f"{platform.python_version()}; run {time.strftime('%Y-%m-%d')}. Command: `.venv/bin/python bench/usage.py "
        f"--events {args.events} --lanes {args.lanes} --rounds {args.rounds}`.",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args()
    section = asyncio.run(run(args))
    print(section)
    if not args.no_docs:
        write_section(SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
