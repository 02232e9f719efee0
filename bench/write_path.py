"""Postgres CPU per payment record on the write path: main's batch statement vs this one, same run, same database.

    .venv/bin/python bench/write_path.py                 # 2 alternating rounds, prints figures
    .venv/bin/python bench/write_path.py --write-docs    # ... and replaces its section of docs/benchmarks.md

What a /verify costs Postgres for its record: the payment writer's batch (records + their ``payment.*`` events, one
statement, group commit) and then the dispatcher's pass over those events. Both paths write the same records
(valid verifies naming a resource, half of them listed in the registry, 20 tenants of which one has a webhook
endpoint subscribing to everything) in batches of ``--batch`` (8: what 16 connections share per commit) through
the service's pool (role ``x402_app``, RLS on):

- *main*: the 0020 per-row trigger resolving the registry listing, events written undispatched, the dispatcher
  marking every one dispatched (an UPDATE per event) and fanning out the subscribed ones;
- *this branch*: the listing resolved by a lateral join in the batch statement (migration 0040 dropped the
  trigger), events no active endpoint subscribes to written already dispatched, the same dispatcher pass.

The figure is the CPU (user + system, from ``/proc/<pid>/stat``) of the two Postgres backends serving the writer and
the dispatcher, per record; WAL writer, checkpointer and autovacuum are not counted (the same for both paths).
Postgres: BENCH_DATABASE_URL or DATABASE_URL (any database on the server), else postgresql://postgres@127.0.0.1/test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import DEFAULT_PG, TENANTS, drop_db, scratch_db  # noqa: E402
from x402.service.events.dispatcher import dispatch  # noqa: E402
from x402.service.events.outbox import API_VERSION, Conn  # noqa: E402
from x402.service.platform.recorder import events_for  # noqa: E402
from x402.service.platform.writer import _ALL_TYPES, COLUMNS, PaymentRecord, write_batch  # noqa: E402
from x402.service.storage.scope import system_scope  # noqa: E402
from x402.service.storage.walls import create_walled_pool  # noqa: E402

SECTION = "## Write path, Postgres CPU per record (bench/write_path.py)"
TICK = os.sysconf("SC_CLK_TCK")
URL = "https://api.example.com/paid/"

# main's batch statement (before migration 0040): no resource_id, events undispatched
_N = len(COLUMNS)
MAIN_BATCH = (
    f"WITH p AS (INSERT INTO payments ({', '.join(COLUMNS)}) SELECT * FROM unnest("  # noqa: S608 (constant text)
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_ALL_TYPES, 1))
    + ") ON CONFLICT (id) DO NOTHING), e AS (INSERT INTO provider_events (id, tenant_id, type, api_version, data,"  # noqa: S608
    f" created_at) SELECT i, t, ty, ${_N + 1}, d::jsonb, c FROM unnest(${_N + 2}::uuid[], ${_N + 3}::uuid[],"
    f" ${_N + 4}::text[], ${_N + 5}::text[], ${_N + 6}::timestamptz[]) AS u(i, t, ty, d, c)"
    " ON CONFLICT (id) DO NOTHING) SELECT 1"
)
# migration 0020's trigger, put back for the *main* path
TRIGGER_ON = """
CREATE OR REPLACE FUNCTION x402_payment_resource() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.resource <> '' AND NEW.resource_id IS NULL THEN
        NEW.resource_id := x402_payment_resource_id(NEW.tenant_id, NEW.resource, NEW.method);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payments_resource BEFORE INSERT ON payments
    FOR EACH ROW WHEN (NEW.resource <> '' AND NEW.resource_id IS NULL) EXECUTE FUNCTION x402_payment_resource();
"""
TRIGGER_OFF = "DROP TRIGGER payments_resource ON payments; DROP FUNCTION x402_payment_resource();"


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def verify_record(i: int) -> PaymentRecord:
    return PaymentRecord(
        kind="verify",
        status="valid",
        network="eip155:8453",
        tenant_id=TENANTS[i % len(TENANTS)],
        asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        payer=f"0x{i % 5000:040x}",
        pay_to="0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        amount=10_000,
        resource=f"{URL}{i % 40}",
        method="GET",
        latency_ms=1.5,
        risk="accept",
        risk_level="low",
    )


async def main_batch(conn: Conn, records: list[PaymentRecord]) -> None:
    events = [e for r in records for e in events_for(r)]
    columns = [list(col) for col in zip(*(r.row() for r in records), strict=True)]
    await conn.execute(
        MAIN_BATCH,
        *columns,
        API_VERSION,
        [e.id for e in events],
        [e.tenant_id for e in events],
        [e.type for e in events],
        ["{}" for _ in events],
        [e.created_at for e in events],
    )


async def run_path(pool: asyncpg.Pool, owner: asyncpg.Connection, *, main: bool, n: int, batch: int) -> float:
    """Postgres CPU µs per record of writing ``n`` records in batches of ``batch``, then dispatching."""
    if main:
        await owner.execute(TRIGGER_ON)
    async with pool.acquire() as writer, pool.acquire() as dispatcher:
        pids = [await writer.fetchval("SELECT pg_backend_pid()"), await dispatcher.fetchval("SELECT pg_backend_pid()")]
        start = sum(cpu(p) for p in pids)
        for k in range(0, n, batch):
            records = [verify_record(i) for i in range(k, k + batch)]
            if main:
                await main_batch(writer, records)
            else:
                await write_batch(writer, records, [e for r in records for e in events_for(r)])
            if k % (batch * 50) == 0:  # the dispatcher passes a few times a second meanwhile
                await dispatch(dispatcher)
        while (await dispatch(dispatcher))[0]:
            pass
        used = sum(cpu(p) for p in pids) - start
    if main:
        await owner.execute(TRIGGER_OFF)
    return used / n * 1e6


async def check_same(pool: asyncpg.Pool) -> tuple[int, int]:
    """(records, records whose resource_id differs from the 0020 rule): both paths must attribute identically."""
    row = await pool.fetchrow(
        """SELECT count(*) AS n, count(*) FILTER (WHERE resource_id IS DISTINCT FROM
               x402_payment_resource_id(tenant_id, resource, method)) AS wrong FROM payments"""
    )
    assert row is not None
    return int(row["n"]), int(row["wrong"])


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text()
    start = current.find(SECTION)
    if start == -1:
        new = current.rstrip("\n") + "\n\n" + text
    else:
        nxt = current.find("\n## ", start + len(SECTION))
        new = current[:start] + text + (current[nxt + 1 :] if nxt != -1 else "")
    path.write_text(new.rstrip("\n") + "\n")


async def main_async(args: argparse.Namespace) -> int:
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_PG
    url = await scratch_db(server)
    rounds: list[tuple[float, float]] = []
    try:
        owner = await asyncpg.connect(url)
        for i in range(0, 40, 2):  # half the resources are listed (public listings)
            await owner.execute("INSERT INTO resources (url, method, accepts) VALUES ($1, 'GET', '[]')", f"{URL}{i}")
        await owner.execute(
            """INSERT INTO webhook_endpoints (id, tenant_id, url, events, key_id, nonce, ciphertext)
               VALUES ($1, $2, 'https://hooks.example.com/x', '{*}', 'k', '\\x00', '\\x00')""",
            uuid.uuid4(),
            TENANTS[0],
        )
        pool = await create_walled_pool(url, min_size=2, max_size=2)
        try:
            with system_scope("bench: records of every tenant"):
                for r in range(args.rounds):
                    before = await run_path(pool, owner, main=True, n=args.records, batch=args.batch)
                    after = await run_path(pool, owner, main=False, n=args.records, batch=args.batch)
                    rounds.append((before, after))
                    print(
                        f"round {r + 1}: Postgres CPU per record: main {before:.1f} us, this branch {after:.1f} us"
                        f" ({after / before:.2f}x)",
                        flush=True,
                    )
                n, wrong = await check_same(pool)
                undelivered = await pool.fetchval("SELECT count(*) FROM provider_events WHERE NOT dispatched")
                deliveries = await pool.fetchval("SELECT count(*) FROM webhook_deliveries")
        finally:
            await pool.close()
            await owner.close()
    finally:
        await drop_db(server, url)
    want = args.rounds * 2 * args.records // len(TENANTS)  # the subscribed tenant's events, both paths
    ok = wrong == 0 and undelivered == 0 and deliveries == want
    print(f"{n} records, {wrong} attributed differently from the 0020 rule; deliveries {deliveries} (want {want})")
    if args.write_docs:
        table = "\n".join(f"| {i + 1} | {b:.1f} | {a:.1f} | {a / b:.2f}x |" for i, (b, a) in enumerate(rounds))
        write_docs(
            f"""{SECTION}

Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} ({os.cpu_count()} CPUs, shared with other jobs),
Postgres on the same box, the service's pool (role `x402_app`, RLS on). Command:
`.venv/bin/python bench/write_path.py --write-docs` ({args.rounds} alternating rounds of {args.records:,} valid
verify records per path, batches of {args.batch}, each with its `payment.verified` event; 20 tenants, one with a
`*` webhook endpoint; half the resources listed in the registry). CPU (user + system) of the Postgres backends of
the writer and the dispatcher, per record:

| round | main µs/record | this branch µs/record | ratio |
|---:|---:|---:|---:|
{table}

*main*: 0020's per-row trigger resolves the registry listing, every event is written undispatched and the
dispatcher marks each one. *This branch*: the listing is resolved by a lateral join in the batch statement
(migration 0040), and an event no active endpoint of its tenant subscribes to is written already dispatched.
Same attribution ({wrong} of {n:,} records differ from the 0020 rule) and the same deliveries ({deliveries:,}).
"""
        )
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
