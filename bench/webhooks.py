"""Benchmark webhook delivery: deliveries/s from one process to a local receiver, against a bare aiohttp POST loop.

Set-up: a fresh migrated database (DATABASE_URL, else the local test server, else embedded Postgres); an aiohttp
receiver on loopback answering 200, in a second process (so it does not take the sender's CPU); ``--endpoints``
endpoints (all events), ``--events`` provider events in the outbox. Measured: the real worker (``DeliveryWorker``:
dispatch fan-out, endpoint leases, per-endpoint ordered sends with HMAC signatures, the delivery log writes) from
start until the receiver has every delivery. Baseline, same run: the same number of POSTs of the same bodies over
one aiohttp session, one sequential lane per endpoint (the per-endpoint ordering), nothing else. Figures go to
docs/benchmarks.md (section ``## Webhook delivery (bench/webhooks.py)``).

Usage: ``.venv/bin/python bench/webhooks.py [--events N] [--endpoints E]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import database, write_section  # noqa: E402
from tests.harness.services import free_port  # noqa: E402
from wallets.custody import Keyring  # noqa: E402
from x402.logs import configure_logging  # noqa: E402
from x402.service.events.delivery import DeliveryOptions, DeliveryWorker  # noqa: E402
from x402.service.events.endpoints import Endpoints, Who  # noqa: E402
from x402.service.events.outbox import Event, insert_events  # noqa: E402
from x402.webhooks import SIGNATURE_HEADER, sign  # noqa: E402

SECTION = "## Webhook delivery (bench/webhooks.py)"
TARGET = 2000.0


class Counter:
    """The receiver, in its own process (so it does not share the sender's CPU): counts POSTs."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self.goal = 0

    async def expect(self, goal: int) -> None:
        """Reset the count; ``wait`` returns once ``goal`` more POSTs arrived."""
        async with self.session.post(f"{self.url}/reset") as r:
            await r.read()
        self.goal = goal

    async def wait(self) -> None:
        """Poll the receiver's count until the goal."""
        while True:
            async with self.session.get(f"{self.url}/count") as r:
                if int(await r.text()) >= self.goal:
                    return
            await asyncio.sleep(0.01)


def receiver_main(port: int) -> None:
    """``--receiver PORT``: the receiving process (200 to every POST, a count at GET /count)."""
    seen = [0]

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        seen[0] += 1
        return web.Response(text="ok")

    async def count(_: web.Request) -> web.Response:
        return web.Response(text=str(seen[0]))

    async def reset(_: web.Request) -> web.Response:
        seen[0] = 0
        return web.Response(text="0")

    app = web.Application()
    app.router.add_post("/hook/{k}", hook)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def body_of(i: int) -> bytes:
    """A body of an event's size."""
    return (
        f'{{"id":"{uuid.uuid4()}","type":"payment.settled","createdAt":"2026-12-03T00:00:00Z","tenantId":null,'
        f'"data":{{"n": {i}, "amount": "10000", "network": "eip155:8453"}},"apiVersion":"2026-12-01"}}'
    ).encode()


async def baseline(url: str, lanes: int, per_lane: int, counter: Counter) -> float:
    """Bare POSTs: one sequential lane per endpoint on one session; deliveries/s."""
    await counter.expect(lanes * per_lane)
    secret = [b"whsec_bench"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def lane(k: int) -> None:
            for i in range(per_lane):
                body = body_of(i)
                headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
                async with session.post(f"{url}/hook/{k}", data=body, headers=headers) as r:
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(lane(k) for k in range(lanes)))
        elapsed = time.perf_counter() - t0
    return lanes * per_lane / elapsed


async def machinery(db: str, url: str, lanes: int, events: int, counter: Counter) -> float:
    """The real worker from a full outbox to the last delivery received; deliveries/s."""
    keyring = Keyring(os.urandom(32))
    pool = await asyncpg.create_pool(db, min_size=4, max_size=lanes + 8)
    assert pool is not None
    try:
        store = Endpoints(pool, keyring, allow_private=True)
        for k in range(lanes):
            await store.create(Who(None, "bench"), f"{url}/hook/{k}", None)
        async with pool.acquire() as conn:
            for start in range(0, events, 1000):
                batch = [Event("payment.settled", {"n": i}) for i in range(start, min(events, start + 1000))]
                await insert_events(conn, batch)
        await counter.expect(lanes * events)
        options = DeliveryOptions(interval=0.005, endpoints_per_pass=lanes, per_endpoint=500, dispatch_batch=5000)
        worker = DeliveryWorker(pool, keyring, allow_private=True, options=options)
        t0 = time.perf_counter()
        task = asyncio.create_task(worker.run())
        await counter.wait()
        elapsed = time.perf_counter() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
        left = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
        # the last answers may be in flight when the receiver counted them: their log rows follow at once
        for _ in range(100):
            if not left:
                break
            await asyncio.sleep(0.05)
            left = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
    finally:
        await pool.close()
    return lanes * events / elapsed


async def run(args: argparse.Namespace) -> str:
    configure_logging("warning", "console")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--receiver", str(port))
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(500):
                try:
                    async with session.get(f"{url}/count") as r:
                        await r.read()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
            counter = Counter(url, session)
            with tempfile.TemporaryDirectory() as tmp:
                for _ in range(args.rounds):
                    async with database(Path(tmp)) as db:
                        base = await baseline(url, args.endpoints, args.events, counter)
                        ours = await machinery(db, url, args.endpoints, args.events, counter)
                    rows.append((base, ours))
    finally:
        proc.terminate()
        await proc.wait()
    lines = [
        SECTION,
        "",
        f"{args.events} events x {args.endpoints} endpoints = {args.events * args.endpoints} deliveries per round to "
        "a local aiohttp receiver (its own process), from one process. The worker dispatches the outbox, leases "
        "each endpoint, sends its queue in order (signed), and writes the delivery log; the baseline is bare signed "
        "POSTs on one aiohttp session, one sequential lane per endpoint, in the same run.",
        "",
        "| round | bare POST loop (req/s) | webhook worker (deliveries/s) | ratio | target 2,000/s |",
        "|---|---|---|---|---|",
    ]
    for i, (base, ours) in enumerate(rows, 1):
        ok = "met" if ours >= TARGET else "missed"
        lines.append(f"| {i} | {base:,.0f} | {ours:,.0f} | {ours / base:.2f} | {ok} |")
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs while measured), Python "
        f"{platform.python_version()}; run {time.strftime('%Y-%m-%d')}. Command: `.venv/bin/python bench/webhooks.py "
        f"--events {args.events} --endpoints {args.endpoints} --rounds {args.rounds}`.",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--endpoints", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-docs", action="store_true")
    p.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
        return 0
    section = asyncio.run(run(args))
    print(section)
    if not args.no_docs:
        write_section(SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
