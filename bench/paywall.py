"""Benchmark the paywall: the unpaid 402 challenge path against a bare aiohttp hello-world, and the full paid cycle.

1. Challenge throughput: two server processes on uvloop, started by this script (``--serve hello`` and
   ``--serve paywall``): a bare aiohttp "hello" handler, and the same handler behind ``Paywall`` (every request
   unpaid, so each answer is a 402 with ``PAYMENT-REQUIRED``, the v1 body and ``Cache-Control``). ``wrk -t1 -c50
   -d10s`` after a 2 s warm-up against each, in the same run. Target: the challenge path >= 80% of hello-world.
2. Paid cycle: anvil + the dev token (``start_devchain``), Postgres (DATABASE_URL, else the local test database,
   else an embedded one; a scratch database is created and dropped), the service app with the in-process
   facilitator and a paid route, and our ``X402Client`` paying it N times (challenge, sign, verify, handler,
   settle on chain, receipt) sequentially and with 8 concurrent payers.

Figures are printed and written to docs/benchmarks.md (section ``## Paywall (bench/paywall.py)``; other sections
are left alone). Usage: ``.venv/bin/python bench/paywall.py [--quick]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Paywall (bench/paywall.py)"
TARGET_RATIO = 0.80
AMOUNT = 10_000
PAY_TO = "0x000000000000000000000000000000000000bEEF"


def say(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------ servers (child processes)


class _NoFacilitator:
    """The challenge path never calls the facilitator; anything else is a bench bug."""

    async def verify(self, payload: Any, requirements: Any) -> Any:
        raise AssertionError("verify called")

    async def settle(self, payload: Any, requirements: Any) -> Any:
        raise AssertionError("settle called")

    async def supported(self) -> Any:
        raise AssertionError("supported called")


def serve(kind: str, port: int) -> None:
    """Run one benchmark server on uvloop until killed."""
    import uvloop
    from aiohttp import web

    from x402.logs import configure_logging

    configure_logging("warning")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    if kind == "bytes":
        # a bare handler answering exactly the paywall's 402 (headers and body, built by the paywall's own code):
        # separates the cost of the bytes on the wire from the cost of the paywall's work
        from x402.paywall import Offer
        from x402.paywall.challenge import ChallengeCache
        from x402.paywall.offers import as_paid_route

        route = as_paid_route(
            Offer(
                amount=AMOUNT,
                asset="0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                network="eip155:84532",
                pay_to=PAY_TO,
                description="bench resource",
                mime_type="text/plain",
            )
        )
        challenge = ChallengeCache().get(route, f"http://127.0.0.1:{port}/r")

        async def same_bytes(request: web.Request) -> web.Response:
            return web.Response(status=402, body=challenge.body, headers=challenge.headers)

        app.router.add_get("/r", same_bytes)
    else:
        app.router.add_get("/r", hello)
    if kind == "paywall":
        from x402.paywall import Offer, Paywall

        offer = Offer(
            amount=AMOUNT,
            asset="0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            network="eip155:84532",
            pay_to=PAY_TO,
            description="bench resource",
            mime_type="text/plain",
        )
        Paywall(_NoFacilitator(), routes={("GET", "/r"): offer}, check_supported=False).setup(app)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ------------------------------------------------------------------------------------ challenge throughput


def _wrk(url: str, seconds: int) -> tuple[float, str, dict[str, int]]:
    out = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found is not None, out
    rps = float(found.group(1))
    p99 = re.search(r"99%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    counts = {"requests": int(total.group(1)) if total else 0, "non2xx": int(non2xx.group(1)) if non2xx else 0}
    return rps, p99.group(1) if p99 else "?", counts


@contextlib.contextmanager
def _server(kind: str) -> Any:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/r"
    finally:
        proc.terminate()
        proc.wait(10)


def challenge_bench(seconds: int, rounds: int) -> dict[str, Any]:
    """wrk against hello-world and the paywall challenge, alternating ``rounds`` times; the best round of each.

    Both servers run for the whole bench; alternating rounds and keeping each one's best figure damps the noise
    of a shared box (other processes, CPU frequency) that a single back-to-back pair is exposed to.
    """
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    results: dict[str, Any] = {"load": ", ".join(f"{x:.1f}" for x in os.getloadavg())}
    with _server("hello") as hello_url, _server("paywall") as paywall_url, _server("bytes") as bytes_url:
        check = subprocess.run(["curl", "-si", paywall_url], capture_output=True, text=True).stdout
        if " 402 " not in check.splitlines()[0] or "payment-required:" not in check.lower():
            raise RuntimeError(f"the paywall server does not answer a 402 challenge: {check[:300]}")
        for url in (hello_url, paywall_url, bytes_url):
            _wrk(url, 2)  # warm-up
        for n in range(rounds):
            for kind, url in (("hello", hello_url), ("paywall", paywall_url), ("bytes", bytes_url)):
                rps, p99, counts = _wrk(url, seconds)
                say(f"  round {n + 1} {kind:8s} {rps:8.0f} req/s p99 {p99} ({counts['non2xx']} non-2xx)")
                best = results.get(kind)
                if best is None or rps > best["rps"]:
                    results[kind] = {"rps": rps, "p99": p99, **counts}
                results.setdefault(f"{kind}_all", []).append(round(rps))
    results["ratio"] = results["paywall"]["rps"] / results["hello"]["rps"]
    results["bytes_ratio"] = results["paywall"]["rps"] / results["bytes"]["rps"]
    say(f"  challenge / hello-world (best of {rounds}) = {results['ratio']:.0%} (target >= {TARGET_RATIO:.0%})")
    return results


# ------------------------------------------------------------------------------------ paid cycle on anvil


@contextlib.asynccontextmanager
async def _database(server_url: str) -> AsyncIterator[str]:
    """A scratch, migrated database on ``server_url``, dropped afterwards."""
    import asyncpg

    from tests.harness.services import with_database
    from x402.service.storage.db import migrate

    name = f"x402_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(server_url, name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    try:
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _pay_loop(client: Any, url: str, n: int, latencies: list[float]) -> int:
    """Pay ``url`` ``n`` times in a row; the number of settled payments."""
    ok = 0
    for _ in range(n):
        t0 = time.perf_counter()
        resp = await client.get(url)
        latencies.append(time.perf_counter() - t0)
        ok += bool(resp.status == 200 and resp.settlement is not None and resp.settlement.success)
    return ok


async def paid_bench(pg_url: str, count: int, concurrency: int) -> dict[str, Any]:
    """Pay a paywalled route ``count`` times through the in-process facilitator on a fresh anvil."""
    from aiohttp import web

    from chains.evm.devchain import start_devchain
    from chains.evm.payer import EvmSigner
    from tests.harness.evm import chain_settings
    from tests.harness.paychain import EvmChain, offer_on, paywalled_app
    from x402.client import PaymentPolicy, X402Client
    from x402.logs import configure_logging

    configure_logging("warning")
    anvil, chain = await start_devchain(None)
    try:
        async with _database(pg_url) as db_url:
            on = EvmChain(chain)

            async def handler(request: web.Request) -> web.Response:
                return web.json_response({"ok": True})

            app = paywalled_app(
                on,
                chain_settings(chain, db_url, chain.facilitator_key),
                {"/paid": handler},
                {("GET", "/paid"): offer_on(on, PAY_TO, AMOUNT)},
            )
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            url = f"http://127.0.0.1:{port}/paid"
            results: dict[str, Any] = {}
            try:
                async with aiohttp.ClientSession() as session:
                    payers = [
                        X402Client(session, [EvmSigner(k)], PaymentPolicy(allowed_assets=[chain.token_address]))
                        for k in chain.payer_keys[:8]
                    ]
                    await payers[0].get(url)  # warm-up
                    for conc in sorted({1, concurrency}):
                        latencies: list[float] = []
                        per = max(1, count // conc)
                        started = time.perf_counter()
                        oks = await asyncio.gather(
                            *(_pay_loop(payers[i % len(payers)], url, per, latencies) for i in range(conc))
                        )
                        ok = sum(oks)
                        elapsed = time.perf_counter() - started
                        latencies.sort()
                        total = per * conc
                        results[f"c{conc}"] = {
                            "payments": total,
                            "ok": ok,
                            "per_s": total / elapsed,
                            "p50_ms": latencies[len(latencies) // 2] * 1000,
                            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
                        }
                        r = results[f"c{conc}"]
                        say(
                            f"  {conc} concurrent: {r['per_s']:.1f} paid requests/s, p50 {r['p50_ms']:.1f} ms, "
                            f"p99 {r['p99_ms']:.1f} ms ({ok}/{total} settled)"
                        )
            finally:
                await runner.cleanup()
            return results
    finally:
        await anvil.stop()


# ------------------------------------------------------------------------------------ report


def write_section(body: str) -> None:
    """Replace (or append) only this script's section of docs/benchmarks.md."""
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.rstrip()}\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt >= 0 else "")
    DOCS.write_text(text)


def report(ch: dict[str, Any], paid: dict[str, Any], seconds: int, rounds: int, quick: bool) -> str:
    h, p, b = ch["hello"], ch["paywall"], ch["bytes"]
    verdict = "meets" if ch["ratio"] >= TARGET_RATIO else "MISSES"
    lines = [
        f"Run {datetime.date.today().isoformat()} on {platform.machine()} ({os.cpu_count()} CPUs), Python "
        f"{platform.python_version()}, uvloop; wrk and the servers share the box (load average before the run: "
        f"{ch['load']}; figures from a loaded box are noisy, compare the two servers of one run only)."
        + (" Quick mode: short runs, indicative only." if quick else ""),
        "",
        f"### 402 challenge vs hello-world (`wrk -t1 -c50 -d{seconds}s`, 2 s warm-up, one process each, "
        f"{rounds} alternating rounds, best of each)",
        "",
        "| server | req/s | p99 | answers (best round) |",
        "|---|---:|---:|---|",
        f"| bare aiohttp hello-world | {h['rps']:.0f} | {h['p99']} | {h['requests']} x 200 |",
        f"| paywall, unpaid (402 + `PAYMENT-REQUIRED` + v1 body) | {p['rps']:.0f} | {p['p99']} | {p['non2xx']} x 402 |",
        f"| bare aiohttp handler answering the same 402 bytes | {b['rps']:.0f} | {b['p99']} | {b['non2xx']} x 402 |",
        "",
        f"Challenge path = **{ch['ratio']:.0%}** of hello-world ({verdict} the >= {TARGET_RATIO:.0%} target), and "
        f"**{ch['bytes_ratio']:.0%}** of a bare handler sending the same bytes. The 402 header and body are encoded "
        "once per (route, resource URL) and reused, and paid routes' handlers are wrapped at start-up (no "
        "per-request middleware); what separates the 402 from hello-world is mostly the ~1.2 KB it must carry "
        "(`PAYMENT-REQUIRED` and the v1 body) against hello-world's 5 bytes.",
        "",
        "### Full paid cycle on anvil (our `X402Client` -> paywall -> in-process facilitator -> chain)",
        "",
        "Each paid request = GET (402) + sign + GET with `PAYMENT-SIGNATURE` (decode, match, verify with an "
        "`eth_call` simulation, claim, handler, settle: sign + send + receipt on anvil automine, Postgres journal).",
        "",
        "| concurrent payers | paid requests/s | p50 | p99 | settled |",
        "|---:|---:|---:|---:|---|",
    ]
    for key in sorted(paid, key=lambda k: int(k[1:])):
        r = paid[key]
        lines.append(
            f"| {key[1:]} | {r['per_s']:.1f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms "
            f"| {r['ok']}/{r['payments']} |"
        )
    lines += [
        "",
        "Settlements from one facilitator signer are serialised by its nonce slot, so concurrency mostly overlaps "
        "the challenge, signing and verify steps; anvil mines each transaction at once (a real chain adds block time).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", choices=("hello", "paywall", "bytes"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="short runs (indicative only)")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    seconds = 3 if args.quick else 10
    say("402 challenge throughput:")
    rounds = 1 if args.quick else 3
    ch = challenge_bench(seconds, rounds)
    say("paid cycle on anvil:")
    from tests.harness.services import postgres

    with postgres() as pg_url:  # DATABASE_URL, the local test server, or an embedded one
        paid = asyncio.run(paid_bench(pg_url, 20 if args.quick else 200, 8))
    write_section(report(ch, paid, seconds, rounds, args.quick))
    say(f"written to {DOCS.relative_to(ROOT)} ({SECTION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
