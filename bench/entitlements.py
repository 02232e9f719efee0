"""Benchmark ``GET /v1/entitlements/{customer}`` (cached): latency percentiles against a bare aiohttp handler.

Set-up: a fresh migrated database (DATABASE_URL, else the local test server, else embedded Postgres); two service
apps (API keys on, row-level security on) on loopback in this process, sharing the database; one tenant with a
``verify`` key, a plan with features and two limited meters, ``--customers`` customers on it with usage. Measured
from an aiohttp client in the same process: warm-cache GETs one at a time and from ``--lanes`` concurrent lanes,
each request timed by the client and by a first middleware on the server (the server's share: API key, tenant
scope, cache, JSON); cold reads (every cached answer dropped by a plan change, then one read per customer: the
uncached path, usage summed in Postgres); invalidation: a customer's plan changed through app 1 and its next
read on app 1 (same process) and on app 2 (NOTIFY) must show the new plan. Baseline, same run: a bare aiohttp
app answering a fixed JSON body of the same size, same client, same lanes. Figures go to docs/benchmarks.md
(section ``## Entitlements (bench/entitlements.py)``) with ``--write-docs``.

Usage: ``.venv/bin/python bench/entitlements.py [--customers N] [--requests R] [--lanes L] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import database, serve  # noqa: E402
from x402.logs import configure_logging  # noqa: E402
from x402.service.app import create_app  # noqa: E402
from x402.service.settings import Settings  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Entitlements (bench/entitlements.py)"
TARGET_MS = 5.0
TOKEN = secrets.token_urlsafe(32)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def timed(spent: list[float]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A first middleware recording the server's time per request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        began = time.perf_counter()
        try:
            return await handler(request)
        finally:
            spent.append(time.perf_counter() - began)

    return middleware


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))] * 1000


async def drive(
    session: aiohttp.ClientSession, urls: list[str], lanes: int, headers: dict[str, str]
) -> tuple[list[float], float]:
    """GET every URL from ``lanes`` lanes; (client time per request, requests per second)."""
    queue = list(reversed(urls))
    times: list[float] = []

    async def lane() -> None:
        while queue:
            url = queue.pop()
            began = time.perf_counter()
            async with session.get(url, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            times.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return times, len(urls) / (time.perf_counter() - began)


async def setup_tenant(url: str, customers: int) -> dict[str, str]:
    """A tenant, its verify key, meters, a plan and ``customers`` customers on it with some usage."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
        async with s.post(f"{url}/v1/tenants", json={"name": "bench", "tier": "enterprise"}) as r:
            tenant = (await r.json())["id"]
        async with s.post(f"{url}/v1/tenants/{tenant}/keys", json={"scopes": ["admin", "verify"]}) as r:
            key = (await r.json())["key"]
    h = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=h) as s:
        for meter in ("tokens", "calls"):
            async with s.put(f"{url}/v1/meters/{meter}", json={"aggregation": "sum"}) as r:
                assert r.status == 200, await r.text()
        for plan, features in (("pro", ["export", "search", "api"]), ("team", ["export", "search", "api", "sso"])):
            body = {"features": features, "limits": {"tokens": 1_000_000, "calls": 10_000}, "stop": "hard"}
            async with s.put(f"{url}/v1/plans/{plan}", json=body) as r:
                assert r.status == 200, await r.text()
        for i in range(customers):
            async with s.put(f"{url}/v1/customers/cus_{i}", json={"plan": "pro"}) as r:
                assert r.status == 200, await r.text()
        for start in range(0, customers, 200):
            events = [
                {"id": f"e{i}-{m}", "customer": f"cus_{i}", "meter": m, "value": 100 + i}
                for i in range(start, min(customers, start + 200))
                for m in ("tokens", "calls")
            ]
            async with s.post(f"{url}/v1/events", json={"events": events}) as r:
                assert r.status == 200, await r.text()
    return h


async def run(args: argparse.Namespace) -> str:
    configure_logging("warning", "console")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with database(Path(tmp)) as db:
            settings = Settings(database_url=db, require_api_keys=True, admin_token=TOKEN, log_level="warning")
            spent: list[float] = []
            app1 = create_app(settings)
            app1.middlewares.insert(0, timed(spent))
            runner1, url1 = await serve(app1)
            runner2, url2 = await serve(create_app(settings))
            try:
                h = await setup_tenant(url1, args.customers)
                rng = random.Random(7)
                paths = [f"/v1/entitlements/cus_{rng.randrange(args.customers)}" for _ in range(args.requests)]
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"{url1}/v1/entitlements/cus_0", headers=h) as r:
                        body = await r.read()
                    fixed = body

                    async def bare(request: web.Request) -> web.Response:
                        return web.Response(body=fixed, content_type="application/json")

                    base_spent: list[float] = []
                    base_app = web.Application(middlewares=[timed(base_spent)])
                    base_app.router.add_get("/v1/entitlements/{customer}", bare)
                    base_runner, base_url = await serve(base_app)
                    try:
                        # warm the cache (and the connections)
                        await drive(s, [url1 + f"/v1/entitlements/cus_{i}" for i in range(args.customers)], 4, h)
                        await drive(s, [base_url + p for p in paths[:500]], 4, h)
                        for name, lanes in (("sequential", 1), ("concurrent", args.lanes)):
                            for label, base in (("bare", base_url), ("ours", url1)):
                                server = base_spent if label == "bare" else spent
                                server.clear()
                                times, rps = await drive(s, [base + p for p in paths], lanes, h)
                                out[f"{name}:{label}"] = (times, list(server), rps)
                        # the uncached path: a plan edit drops every cached answer of the tenant
                        async with s.put(
                            f"{url1}/v1/plans/pro",
                            json={
                                "features": ["export", "search", "api"],
                                "limits": {"tokens": 1_000_000, "calls": 10_000},
                            },
                            headers=h,
                        ) as r:
                            assert r.status == 200
                        spent.clear()
                        cold = [url1 + f"/v1/entitlements/cus_{i}" for i in range(min(args.customers, 1000))]
                        times, rps = await drive(s, cold, 1, h)
                        out["cold"] = (times, list(spent), rps)
                        # invalidation: change a plan on app 1, read on app 1 and on app 2
                        async with s.get(f"{url2}/v1/entitlements/cus_1", headers=h) as r:
                            assert (await r.json())["plan"] == "pro"  # cached on app 2 now
                        changed = time.perf_counter()
                        async with s.put(f"{url1}/v1/customers/cus_1", json={"plan": "team"}, headers=h) as r:
                            assert r.status == 200
                        async with s.get(f"{url1}/v1/entitlements/cus_1", headers=h) as r:
                            same = (await r.json())["plan"]
                        seen_other, polls = None, 0
                        while time.perf_counter() - changed < 5:
                            polls += 1
                            async with s.get(f"{url2}/v1/entitlements/cus_1", headers=h) as r:
                                if (await r.json())["plan"] == "team":
                                    seen_other = time.perf_counter() - changed
                                    break
                        out["invalidation"] = (same, seen_other, polls)
                    finally:
                        await base_runner.cleanup()
            finally:
                await runner1.cleanup()
                await runner2.cleanup()
    return report(args, out, len(fixed))


def report(args: argparse.Namespace, out: dict[str, Any], size: int) -> str:
    lines = [
        SECTION,
        "",
        f"`GET /v1/entitlements/{{customer}}` on the service app (API keys and row-level security on; a plan with "
        f"features and two limited meters; {args.customers:,} customers with usage), {args.requests:,} GETs of "
        f"random customers per case, cache warm, from an aiohttp client in the same process. Baseline, same run: a "
        f"bare aiohttp handler answering a fixed JSON body of the same size ({size} bytes), same client. Client: "
        "time seen by the client; server: time inside the app (first middleware to answer).",
        "",
        "| case | p50 ms | p95 ms | p99 ms | server p50 ms | server p95 ms | req/s | p95 ratio to bare |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("sequential", "concurrent"):
        bare_p95 = pct(out[f"{name}:bare"][0], 95)
        for label in ("bare", "ours"):
            times, server, rps = out[f"{name}:{label}"]
            lanes = 1 if name == "sequential" else args.lanes
            who = "bare handler" if label == "bare" else "entitlements"
            lines.append(
                f"| {who}, {name} ({lanes} lane{'s' if lanes > 1 else ''}) | {pct(times, 50):.2f} | "
                f"{pct(times, 95):.2f} | {pct(times, 99):.2f} | {pct(server, 50):.2f} | {pct(server, 95):.2f} | "
                f"{rps:,.0f} | {pct(times, 95) / bare_p95:.2f} |"
            )
    times, server, rps = out["cold"]
    lines.append(
        f"| entitlements, uncached (every answer dropped by a plan edit; 1 lane) | {pct(times, 50):.2f} | "
        f"{pct(times, 95):.2f} | {pct(times, 99):.2f} | {pct(server, 50):.2f} | {pct(server, 95):.2f} | "
        f"{rps:,.0f} | — |"
    )
    same, other, polls = out["invalidation"]
    seq_p95 = pct(out["sequential:ours"][1], 95)
    con_p95 = pct(out["concurrent:ours"][1], 95)
    client_seq = pct(out["sequential:ours"][0], 95)
    bare_seq = pct(out["sequential:bare"][0], 95)
    verdict = "met" if max(seq_p95, con_p95) < TARGET_MS else "missed"
    other_text = f"{other * 1000:.1f} ms after the change ({polls} reads)" if other is not None else "not within 5 s"
    lines += [
        "",
        f"Target p95 < {TARGET_MS:.0f} ms (warm, in the server): {verdict} (sequential {seq_p95:.2f} ms, concurrent "
        f"{con_p95:.2f} ms). Seen by the client, sequential p95 is {client_seq:.2f} ms where the bare handler's is "
        f"{bare_seq:.2f} ms in the same run: the rest is the client, the loopback and the machine's load. "
        "Invalidation: a plan change through app 1 is seen by the next read on app 1 "
        f"(plan `{same}`) and on a second app on the same database (Postgres NOTIFY) {other_text}.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs while measured: load "
        f"{os.getloadavg()[0]:.1f}), Python {platform.python_version()}; run {time.strftime('%Y-%m-%d')}. Command: "
        f"`.venv/bin/python bench/entitlements.py --customers {args.customers} --requests {args.requests} --lanes "
        f"{args.lanes} --write-docs`.",
    ]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Put this benchmark's section in docs/benchmarks.md, replacing an older one."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    found = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    text = (
        text[: found.start()] + section + "\n\n" + text[found.end() :] if found else f"{text.rstrip()}\n\n{section}\n"
    )
    DOCS.write_text(text.rstrip("\n") + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--lanes", type=int, default=16)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    section = asyncio.run(run(args))
    print(section)
    if args.write_docs:
        write_section(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
