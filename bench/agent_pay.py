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
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import database, serve, write_section  # noqa: E402
from chains.evm.devchain import DevChain, start_devchain  # noqa: E402
from tests.harness.evm import chain_settings, mint, new_key  # noqa: E402
from tests.harness.paychain import EvmChain, offer_on, paywalled_app  # noqa: E402
from wallets.service import WalletOptions  # noqa: E402
from x402.logs import configure_logging  # noqa: E402
from x402.service.app import create_app  # noqa: E402
from x402.service.appkeys import AppOptions  # noqa: E402

SECTION = "## Agent pay (bench/agent_pay.py)"
PRICE = 1_000


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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    section = asyncio.run(run(args))
    print(section)
    write_section(SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
