"""Soak benchmark: N minutes of mixed traffic at a fixed rate against one ``x402 serve --dev``; leaks show as growth.

Set-up (everything stopped on exit, Ctrl-C included):

1. a scratch database on the local Postgres (DATABASE_URL's server, else postgresql://postgres@127.0.0.1:5432/test;
   created here, dropped afterwards), Redis (``--redis-url``, default db 12 of the local one, when it answers);
2. ``x402 serve --dev`` on a free port: its own anvil with the test token, the dev tenant, the paid demo route
   ``GET /demo/paid`` behind the paywall (in-process facilitator), wallets (a master key generated here) and
   ``X402_ALLOW_PRIVATE_OUTBOUND=1`` so a wallet may pay the demo route on 127.0.0.1;
3. one agent wallet funded with test tokens (an ERC-20 transfer from a dev payer), a few registry listings,
   pre-signed /verify bodies (re-used) and /settle bodies (one per settlement: each pays once).

Load: an open-loop generator (requests leave on a fixed schedule whatever the answers take) at ``--rate`` requests/s,
mixing verify, settle, a paid paywall request (402, then the paid retry, by ``X402Client``), a wallet pay
(``POST /v1/wallets/{id}/pay`` of the demo route) and a discovery search. Every answer is checked (status and
body); errors are counted by kind. Every 10 s: the server's RSS and open fds / sockets (from /proc), its Postgres
connections (pg_stat_activity), its asyncio task count and event-loop lag (``/metrics``), and per-kind latency.

Verdicts: errors == 0; RSS growth (median of the last minute vs the minute after warm-up) < 10%; fds, sockets,
Postgres connections and tasks not growing (the last minute's median within the high-water mark of the samples
before it: pools step up under a burst and stay, a leak keeps climbing); and, the leak test proper, asyncio tasks
and client connections back to their idle figures once the load has stopped.

Usage: ``.venv/bin/python bench/soak.py [--minutes 10] [--rate 40] [--write-docs]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime
import json
import math
import os
import re
import secrets
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.verify import (  # noqa: E402  (bench/verify.py: processes, readiness, signed bodies, CPU from /proc)
    X402_BIN,
    Procs,
    cpu_seconds,
    free_port,
    machine_note,
    make_bodies,
    run_bench,
    say,
    tail,
    wait_http,
)
from chains.evm.devchain import DevChain, find_anvil  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Soak (bench/soak.py)"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/12"
#: share of each kind in the mix (a paywall request is two HTTP requests: the 402 and the paid retry)
MIX: dict[str, float] = {"verify": 0.30, "settle": 0.20, "paywall": 0.15, "wallet": 0.15, "discovery": 0.20}
KINDS = tuple(MIX)
SAMPLE_EVERY = 10.0
RSS_LIMIT = 0.10
#: after the load, tasks and sockets must come back to within this many of their idle figures
SETTLED_SLACK = 5
LISTINGS = ("weather forecast by city", "weather radar tiles", "stock quotes delayed", "news headlines", "fx rates")


# --------------------------------------------------------------------------------------------- set-up


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[tuple[str, str]]:
    """(URL, name) of a fresh, empty database on the local Postgres; dropped afterwards."""
    from tests.harness.services import with_database

    server = os.environ.get("DATABASE_URL") or LOCAL_PG
    name = f"x402_soak_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server, name), name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def redis_answers(url: str) -> bool:
    import redis.asyncio as redis

    client = redis.from_url(url)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


def server_env(database_url: str, redis_url: str | None, data_dir: Path, anvil_port: int) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("X402_WORKERS", "X402_NETWORKS_FILE", "X402_NETWORKS", "X402_PORT", "X402_HOST", "REDIS_URL"):
        env.pop(key, None)
    env.update(
        {
            "DATABASE_URL": database_url,
            "X402_DATA_DIR": str(data_dir),
            "X402_LOG_LEVEL": "warning",
            "X402_MASTER_KEY": secrets.token_hex(32),
            "X402_ALLOW_PRIVATE_OUTBOUND": "1",  # the wallet pays the demo route on 127.0.0.1
            "X402_DEV_ANVIL_PORT": str(anvil_port),
            "X402_ANVIL_BIN": find_anvil(),
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _b64json(value: str) -> Any:
    return json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))


async def prepare(session: aiohttp.ClientSession, base: str, chain: DevChain, budget: int) -> dict[str, Any]:
    """The funded wallet and the registry listings; returns what the load needs."""
    from tests.harness.evm import erc20_transfer, token_balance

    async with session.post(
        f"{base}/v1/wallets", json={"name": "soak", "policy": {"autoPause": {"velocityPerMinute": None}}}
    ) as r:
        wallet = await r.json()
        if r.status != 201:
            raise RuntimeError(f"creating the wallet: HTTP {r.status} {wallet}")
    address = wallet["addresses"]["evm"]
    await erc20_transfer(chain, chain.payer_keys[7], address, budget)
    if await token_balance(chain, address) != budget:
        raise RuntimeError("the wallet was not funded")
    async with session.get(f"{base}/demo/paid") as r:
        header = r.headers.get("PAYMENT-REQUIRED")
        if r.status != 402 or not header:
            raise RuntimeError(f"/demo/paid did not answer a 402 challenge: HTTP {r.status}")
        accepts = _b64json(header)["accepts"]
    for i, text in enumerate(LISTINGS):
        doc = {
            "url": f"{base}/demo/paid?listing={i}",
            "accepts": accepts,
            "description": f"soak listing: {text}",
            "serviceName": f"soak-{i}",
            "tags": ["soak", *text.split()[:2]],
            "category": "data",
        }
        async with session.post(f"{base}/v1/resources", json=doc) as r:
            if r.status != 201:
                raise RuntimeError(f"registering a listing: HTTP {r.status} {await r.text()}")
    return {"wallet": wallet["id"], "wallet_address": address}


# --------------------------------------------------------------------------------------------- load


@dataclasses.dataclass
class Outcome:
    kind: str
    sent: float  # seconds since the start of the load
    latency: float
    error: str = ""  # empty: a correct answer


class Load:
    """The requests of each kind and how their answers are checked."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        chain: DevChain,
        verify_bodies: list[str],
        settle_bodies: list[str],
        wallet_id: str,
    ) -> None:
        from chains.evm.payer import EvmSigner
        from x402.client import PaymentPolicy, X402Client

        self.session = session
        self.base = base
        self.verify_bodies = verify_bodies
        self.settle_bodies = settle_bodies
        self.wallet_id = wallet_id
        self.count: Counter[str] = Counter()
        policy = PaymentPolicy(allowed_assets=[chain.token_address])
        # payers 1-7 (8 funded the wallet; 9 is the demo's payTo); never sign in instead of paying
        self.payers = [X402Client(session, [EvmSigner(k)], policy, sign_in="never") for k in chain.payer_keys[:7]]

    async def run(self, kind: str) -> str:
        """One request of ``kind``; '' when the answer is right, else the error's kind."""
        n = self.count[kind]
        self.count[kind] += 1
        try:
            return str(await getattr(self, kind)(n))
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError as exc:
            return f"connection ({type(exc).__name__})"
        except Exception as exc:  # a client-side failure is an error of this request, never the end of the soak
            return f"exception ({type(exc).__name__}: {str(exc)[:80]})"

    async def _post(self, path: str, body: str) -> tuple[int, Any]:
        async with self.session.post(
            f"{self.base}{path}", data=body.encode(), headers={"Content-Type": "application/json"}
        ) as r:
            text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    async def verify(self, n: int) -> str:
        status, doc = await self._post("/verify", self.verify_bodies[n % len(self.verify_bodies)])
        if status != 200:
            return f"HTTP {status}"
        return "" if isinstance(doc, dict) and doc.get("isValid") is True else f"invalid ({_reason(doc)})"

    async def settle(self, n: int) -> str:
        if n >= len(self.settle_bodies):
            return "out of pre-signed settle bodies"
        status, doc = await self._post("/settle", self.settle_bodies[n])
        if status != 200:
            return f"HTTP {status}"
        ok = isinstance(doc, dict) and doc.get("success") is True and str(doc.get("transaction", "")).startswith("0x")
        return "" if ok else f"not settled ({_reason(doc)})"

    async def paywall(self, n: int) -> str:
        # a distinct URL per purchase: the client refuses to pay twice for one (method, URL) while one is pending
        resp = await self.payers[n % len(self.payers)].get(f"{self.base}/demo/paid?soak={n}")
        if resp.status != 200:
            return f"HTTP {resp.status}"
        if resp.settlement is None or not resp.settlement.success:
            return "no settlement receipt"
        if resp.paid is None:
            return "not paid"
        body = json.loads(resp.body)
        return "" if isinstance(body, dict) and body.get("demo") == "paid" else "unexpected body"

    async def wallet(self, n: int) -> str:
        body = json.dumps({"url": f"{self.base}/demo/paid?wallet={n}"})
        status, doc = await self._post(f"/v1/wallets/{self.wallet_id}/pay", body)
        if status != 200:
            return f"HTTP {status} ({_reason(doc)})"
        payment = doc.get("payment") if isinstance(doc, dict) else None
        return "" if isinstance(payment, dict) and payment.get("paid") is True else f"not paid ({_reason(doc)})"

    async def discovery(self, n: int) -> str:
        query = ("weather", "stock quotes", "news", "fx rates")[n % 4]
        async with self.session.get(f"{self.base}/discovery/search", params={"q": query, "limit": "10"}) as r:
            doc = await r.json(content_type=None)
        if r.status != 200:
            return f"HTTP {r.status}"
        found = [x for x in doc.get("resources", []) if "soak listing" in json.dumps(x)]
        return "" if found else "listing not found"


def _reason(doc: Any) -> str:
    if isinstance(doc, dict):
        for key in ("invalidReason", "errorReason", "code", "error", "title"):
            if doc.get(key):
                return str(doc[key])[:60]
    return str(doc)[:60]


def schedule() -> list[str]:
    """One cycle of kinds in proportion to MIX, interleaved (smooth weighted round robin)."""
    weights = {k: round(v * 20) for k, v in MIX.items()}
    current = dict.fromkeys(weights, 0)
    out = []
    for _ in range(sum(weights.values())):
        for k in current:
            current[k] += weights[k]
        best = max(current, key=lambda k: current[k])
        current[best] -= sum(weights.values())
        out.append(best)
    return out


# --------------------------------------------------------------------------------------------- samples


@dataclasses.dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    sockets: int
    pg_conns: int
    tasks: float
    loop_lag_ms: float
    cpu_s: float
    inflight: int = 0  # the load's requests in flight when the sample was taken
    #: sockets by the other end: "clients" (connections to the service's port), "postgres", "redis", "anvil",
    #: "self" (the service calling its own port: the wallet paying /demo/paid), "other"
    peers: dict[str, int] = dataclasses.field(default_factory=dict)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fds_and_sockets(pid: int) -> tuple[int, int, set[str]]:
    """Open fds, how many are sockets, and the sockets' inodes."""
    fds = 0
    inodes: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            fds += 1
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return fds, len(inodes), inodes


def socket_peers(pid: int, inodes: set[str], port: int, ports: dict[int, str]) -> dict[str, int]:
    """The process's TCP sockets by their other end (from /proc/<pid>/net/tcp and tcp6)."""
    out: Counter[str] = Counter()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                f = line.split()
                if len(f) < 10 or f[9] not in inodes:
                    continue
                local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
                if local == port:
                    out["clients"] += 1
                else:
                    out[ports.get(remote, "other")] += 1
    return dict(out)


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(found.group(1)) if found else float("nan")


class Probes:
    """Samples of the server process, through their own HTTP session (not the load's connection pool)."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, pid: int, admin: asyncpg.Connection, db: str, anvil: str
    ):
        self.session, self.base, self.pid, self.admin, self.db = session, base, pid, admin, db
        self.port = int(base.rsplit(":", 1)[1])
        self.ports = {5432: "postgres", 6379: "redis", int(anvil.rsplit(":", 1)[1].split("/")[0]): "anvil"}
        self.ports[self.port] = "self"

    async def sample(self, t: float, inflight: int = 0) -> Sample:
        async with self.session.get(f"{self.base}/metrics") as r:
            text = await r.text()
        fds, sockets, inodes = fds_and_sockets(self.pid)
        pg = await self.admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", self.db)
        return Sample(
            t=t,
            rss_mb=rss_mb(self.pid),
            fds=fds,
            sockets=sockets,
            pg_conns=int(pg),
            tasks=metric(text, "x402_asyncio_tasks"),
            loop_lag_ms=metric(text, "x402_event_loop_lag_seconds") * 1000,
            cpu_s=cpu_seconds(pid=self.pid),
            inflight=inflight,
            peers=socket_peers(self.pid, inodes, self.port, self.ports),
        )

    async def settled(self, idle: Sample, within: float) -> Sample:
        """After the load: poll (up to ``within`` s) until tasks and client sockets are back near the idle figures."""
        deadline = time.monotonic() + within
        while True:
            got = await self.sample(-1.0)
            clients, clients0 = got.peers.get("clients", 0), idle.peers.get("clients", 0)
            if (got.tasks <= idle.tasks + SETTLED_SLACK and clients <= clients0 + SETTLED_SLACK) or (
                time.monotonic() >= deadline
            ):
                return got
            await asyncio.sleep(1.0)


# --------------------------------------------------------------------------------------------- run


async def soak(args: argparse.Namespace, command: str) -> tuple[str, bool]:
    from x402.logs import configure_logging

    configure_logging("warning", "console")  # the load's own clients (X402Client) log every payment at info
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="x402-soak-"))
    redis_url = None if args.redis_url == "none" else args.redis_url
    if redis_url and not await redis_answers(redis_url):
        say(f"Redis at {redis_url} does not answer: running without it (in-process rate limits and caches)")
        redis_url = None
    duration = args.minutes * 60.0
    n_settle = math.ceil(args.rate * duration * MIX["settle"] * 1.05) + 50
    async with scratch_database() as (database_url, db_name):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp / "server.log"
        env = server_env(database_url, redis_url, tmp / "data", free_port())
        argv = [str(X402_BIN), "serve", "--dev", "--host", "127.0.0.1", "--port", str(port)]
        say(f"starting: x402 serve --dev on :{port} (database {db_name}, Redis {redis_url or 'none'})")
        proc = await procs.start("server", argv, env=env, log=log)
        try:
            await wait_http(f"{base}/readyz", proc, log, "x402 serve --dev", timeout=180)
            timeout = aiohttp.ClientTimeout(total=args.timeout)
            connector = aiohttp.TCPConnector(limit=args.max_inflight + 10)
            async with (
                aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as probe,
            ):
                async with session.get(f"{base}/.well-known/x402") as r:
                    dev = (await r.json())["dev"]
                chain = DevChain(rpc_url=dev["rpcUrl"])
                if dev["asset"]["address"].lower() != chain.token_address.lower():
                    raise RuntimeError(f"unexpected dev token {dev['asset']}")
                wallet_pays = math.ceil(args.rate * duration * MIX["wallet"] * 1.2) + 50
                ready = await prepare(session, base, chain, budget=wallet_pays * 10_000)
                t0 = time.perf_counter()
                verify_bodies, _ = await asyncio.to_thread(make_bodies, chain, 200)
                settle_bodies, _ = await asyncio.to_thread(make_bodies, chain, n_settle)
                say(f"{len(verify_bodies) + len(settle_bodies):,} payloads signed in {time.perf_counter() - t0:.1f} s")
                load = Load(session, base, chain, verify_bodies, settle_bodies, ready["wallet"])
                admin = await asyncpg.connect(os.environ.get("DATABASE_URL") or LOCAL_PG)
                try:
                    probes = Probes(probe, base, proc.pid, admin, db_name, chain.rpc_url)
                    idle = await probes.sample(0.0)
                    outcomes, samples, overload = await drive(args, load, session, probes)
                    await session.close()  # the load's keep-alive connections go; the server's should follow
                    after = await probes.settled(idle, args.drain)
                finally:
                    await admin.close()
            if proc.returncode is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}:\n{tail(log)}")
        finally:
            await procs.close()
            if args.keep_logs:
                say(f"server log kept: {log}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_note(),
        "redis": redis_url or "none",
        "load": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    return render(args, command, info, outcomes, samples, overload, idle, after)


async def drive(
    args: argparse.Namespace, load: Load, session: aiohttp.ClientSession, probes: Probes
) -> tuple[list[Outcome], list[Sample], int]:
    """Send the schedule open-loop for the whole duration; sample every 10 s."""
    loop = asyncio.get_running_loop()
    cycle = schedule()
    duration = args.minutes * 60.0
    outcomes: list[Outcome] = []
    samples: list[Sample] = []
    inflight: set[asyncio.Task[None]] = set()
    overload = 0
    start = loop.time()

    async def one(kind: str, sent: float) -> None:
        began = loop.time()
        error = await load.run(kind)
        outcomes.append(Outcome(kind, sent, loop.time() - began, error))

    async def sampler() -> None:
        nxt = 0.0
        while True:
            now = loop.time() - start
            with contextlib.suppress(Exception):
                samples.append(await probes.sample(now, len(inflight)))
                s = samples[-1]
                done = [o for o in outcomes if o.sent >= now - SAMPLE_EVERY]
                errors = sum(1 for o in outcomes if o.error)
                say(
                    f"  t={now:5.0f} s  RSS {s.rss_mb:6.1f} MB  fds {s.fds}  sockets {s.sockets}  pg {s.pg_conns}  "
                    f"tasks {s.tasks:.0f}  lag {s.loop_lag_ms:.0f} ms  last 10 s: {len(done)} answers  "
                    f"errors so far {errors}  in flight {len(inflight)}"
                )
            nxt += SAMPLE_EVERY
            await asyncio.sleep(max(0.0, start + nxt - loop.time()))

    sampling = asyncio.create_task(sampler())
    i = 0
    try:
        while True:
            due = start + i / args.rate
            if due - start >= duration:
                break
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = cycle[i % len(cycle)]
            if len(inflight) >= args.max_inflight:  # open loop: the server is not keeping up; count, do not queue
                overload += 1
                outcomes.append(Outcome(kind, due - start, 0.0, "not sent: too many requests in flight"))
            else:
                task = asyncio.create_task(one(kind, due - start))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            i += 1
        if inflight:
            await asyncio.wait(inflight, timeout=args.timeout + 5)
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        for task in list(inflight):
            task.cancel()
    return outcomes, samples, overload


# --------------------------------------------------------------------------------------------- report


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def window(samples: list[Sample], lo: float, hi: float) -> list[Sample]:
    return [s for s in samples if lo <= s.t <= hi]


def settled_verdicts(idle: Sample, after: Sample) -> list[tuple[str, bool, str]]:
    """The leak test proper: with the load gone, what the server holds must be back to what it held idle."""
    out = []
    clients = ("client connections", idle.peers.get("clients", 0), after.peers.get("clients", 0))
    for name, a, b in (("asyncio tasks", idle.tasks, after.tasks), clients):
        out.append(
            (
                f"{name} back to idle after the load (within {SETTLED_SLACK})",
                b <= a + SETTLED_SLACK,
                f"idle before {a:.0f}, after {b:.0f}",
            )
        )

    def peers(s: Sample) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(s.peers.items()) if k != "clients") or "none"

    out.append(
        (
            "outbound connection pools bounded (informational: pools keep connections they opened under load)",
            True,
            f"idle before: {peers(idle)}; after: {peers(after)}",
        )
    )
    return out


def growth_verdicts(args: argparse.Namespace, samples: list[Sample]) -> list[tuple[str, bool, str]]:
    duration = args.minutes * 60.0
    first = window(samples, args.warmup, args.warmup + 60)
    last = window(samples, duration - 60, duration + 60)
    if not first or not last:
        return [("enough samples", False, f"{len(first)} in the first minute, {len(last)} in the last")]
    rss0 = statistics.median(s.rss_mb for s in first)
    rss1 = statistics.median(s.rss_mb for s in last)
    growth = rss1 / rss0 - 1
    out = [
        (
            f"RSS growth < {RSS_LIMIT:.0%}",
            growth < RSS_LIMIT,
            f"{rss0:.1f} MB -> {rss1:.1f} MB ({growth:+.1%}, medians of the minute after warm-up and the last minute)",
        )
    ]
    fields: list[tuple[str, Callable[[Sample], float]]] = [
        ("open fds", lambda s: s.fds),
        ("open sockets", lambda s: s.sockets),
        ("Postgres connections", lambda s: s.pg_conns),
        ("asyncio tasks", lambda s: s.tasks),
    ]
    # Pools (Postgres, Redis, RPC, keep-alive connections) open connections when a burst of latency raises the
    # concurrency and keep them, so a count may step up once and stay; a leak keeps making new highs. "Not growing":
    # the last minute's median stays within the high-water mark of the samples before it (after warm-up).
    earlier = window(samples, args.warmup, duration - 60 - 1e-9) or first
    for name, get in fields:
        hi0 = max(get(s) for s in first)
        high = max(get(s) for s in earlier)
        med1 = statistics.median(get(s) for s in last)
        out.append(
            (
                f"{name} not growing",
                med1 <= high,
                f"minute after warm-up {min(get(s) for s in first):.0f}-{hi0:.0f}, high-water mark before the last "
                f"minute {high:.0f}, last minute median {med1:.0f}",
            )
        )
    load0 = statistics.median(s.inflight for s in first)
    load1 = statistics.median(s.inflight for s in last)
    out.append(
        (
            "requests in flight (context: more in flight, more tasks and sockets, leak or not)",
            True,
            f"first minute median {load0:.0f}, last minute median {load1:.0f}",
        )
    )
    return out


def render(
    args: argparse.Namespace,
    command: str,
    info: dict[str, str],
    outcomes: list[Outcome],
    samples: list[Sample],
    overload: int,
    idle: Sample,
    after: Sample,
) -> tuple[str, bool]:
    errors = Counter(f"{o.kind}: {o.error}" for o in outcomes if o.error)
    n_err = sum(errors.values())
    sent = len(outcomes)
    elapsed = args.minutes * 60.0
    checks = [("errors == 0", n_err == 0, f"{n_err:,} of {sent:,} requests")]
    checks += growth_verdicts(args, samples)
    checks += settled_verdicts(idle, after)
    ok = all(c[1] for c in checks)
    lines = [
        SECTION,
        "",
        f"Measured {info['date']} with `{command}`: {args.minutes:g} minutes at {args.rate:g} requests/s "
        f"({sent:,} requests, {sent / elapsed:.1f}/s sent), open loop (a request leaves on schedule whatever the "
        f"earlier ones take; more than {args.max_inflight} in flight would count as an error). Load average at the "
        f"end: {info['load']}.",
        "",
        f"- Machine: {info['machine']}.",
        "- Server: one `x402 serve --dev` process (uvloop; its own anvil with the test token; local Postgres, a "
        f"scratch database; Redis {info['redis']}; wallets with a master key; "
        "`X402_ALLOW_PRIVATE_OUTBOUND=1` for the wallet's calls to the demo route).",
        "- Mix: "
        + ", ".join(f"{MIX[k]:.0%} {k}" for k in KINDS)
        + ". verify = re-used pre-signed EIP-3009 bodies; settle = a distinct pre-signed body each (each pays once, "
        "on anvil); paywall = `X402Client` GET of `/demo/paid` (402, then the paid retry, settled in-process); "
        "wallet = `POST /v1/wallets/{id}/pay` of `/demo/paid` (the service pays its own paywall); discovery = "
        "`GET /discovery/search` finding the soak's registry listings. Every answer's status and body are checked.",
        "",
        "Verdicts:",
        "",
        *(f"- {'ok' if good else '**FAILED**'}: {name}: {detail}" for name, good, detail in checks),
        "",
    ]
    if errors:
        lines += ["Errors by kind:", "", *(f"- {n:,} x {k}" for k, n in errors.most_common(12)), ""]
    lines += [
        "Per minute (server process: RSS, open fds and sockets from /proc; Postgres connections of the scratch "
        "database from pg_stat_activity; asyncio tasks and worst event-loop lag from `/metrics`; medians of the "
        "10 s samples, lag the worst; CPU = cores the server process used):",
        "",
        "| minute | sent | errors | p50 / p99 ms (all kinds) | in flight | RSS MB | fds | sockets | PG conns | tasks "
        "| loop lag ms | server CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    minutes = math.ceil(elapsed / 60)
    for m in range(minutes):
        lo, hi = m * 60.0, (m + 1) * 60.0
        got = [o for o in outcomes if lo <= o.sent < hi]
        lat = [o.latency * 1000 for o in got if not o.error]
        win = [s for s in samples if lo + 1.0 < s.t <= hi + 1.0]
        prev = [s for s in samples if s.t <= lo + 1.0]
        cpu = ""
        if win and prev:
            cpu = f"{(win[-1].cpu_s - prev[-1].cpu_s) / (win[-1].t - prev[-1].t):.2f}"

        def med(get: Callable[[Sample], float], w: list[Sample] = win) -> str:
            return f"{statistics.median(get(s) for s in w):.0f}" if w else "-"

        lines.append(
            f"| {m + 1} | {len(got):,} | {sum(1 for o in got if o.error)} | {pct(lat, 50):.1f} / {pct(lat, 99):.1f} "
            f"| {med(lambda s: s.inflight)} | {statistics.median(s.rss_mb for s in win) if win else float('nan'):.1f} "
            f"| {med(lambda s: s.fds)} "
            f"| {med(lambda s: s.sockets)} | {med(lambda s: s.pg_conns)} | {med(lambda s: s.tasks)} "
            f"| {max((s.loop_lag_ms for s in win), default=float('nan')):.0f} | {cpu} |"
        )
    lines += [
        "",
        "Latency per kind over the whole run (correct answers only; paywall = both requests, wallet = the whole "
        "pay including the service's own paid call):",
        "",
        "| kind | requests | errors | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in KINDS:
        got = [o for o in outcomes if o.kind == k]
        lat = [o.latency * 1000 for o in got if not o.error]
        lines.append(
            f"| {k} | {len(got):,} | {sum(1 for o in got if o.error)} | {pct(lat, 50):.1f} | {pct(lat, 99):.1f} "
            f"| {max(lat, default=float('nan')):.1f} |"
        )
    lines += [
        "",
        f"Overall: **{'PASS' if ok else 'FAIL'}**. Latency and CPU depend on what else runs on the box; the "
        "verdicts compare the server with itself over time.",
        "",
    ]
    if overload:
        lines.insert(-2, f"{overload:,} requests were not sent: more than {args.max_inflight} were in flight.")
    return "\n".join(lines), ok


def write_docs(section: str) -> None:
    """Replace (or append) only this benchmark's section."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text.rstrip("\n") + "\n")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    p.add_argument("--rate", type=float, default=40.0, help="requests per second, all kinds together (default 40)")
    p.add_argument("--warmup", type=float, help="seconds before the baseline minute (default 60; 20 under 5 minutes)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request before it counts as an error")
    p.add_argument("--drain", type=float, default=60.0, help="seconds the server gets to settle after the load")
    p.add_argument("--max-inflight", type=int, default=200, help="requests in flight before new ones are not sent")
    p.add_argument("--redis-url", default=LOCAL_REDIS, help=f"Redis for the server ('none': without; {LOCAL_REDIS})")
    p.add_argument("--write-docs", action="store_true", help="write the section into docs/benchmarks.md")
    p.add_argument("--keep-logs", action="store_true", help="keep the server's log (its path is printed)")
    args = p.parse_args(argv)
    if args.warmup is None:
        args.warmup = 60.0 if args.minutes >= 5 else 20.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/soak.py", *argv])

    async def go() -> int:
        section, ok = await soak(args, command)
        say("")
        say(section)
        if args.write_docs:
            write_docs(section)
            say(f"updated {DOCS.relative_to(ROOT)}")
        return 0 if ok else 1

    return run_bench(go)


if __name__ == "__main__":
    raise SystemExit(main())
