"""Benchmark `POST /settle`: our `x402 serve` against the official x402 Python facilitator and the node's own limit.

One run, everything side by side on the same box (only figures from the same run are compared):

1. anvil + the dev token (``start_devchain``; automine by default, ``--block-time N`` mines a block every N s), and
   Postgres (DATABASE_URL, else a fresh ``bench_settle`` database on the local server, else an embedded one);
2. fresh facilitator signers funded on anvil: one for ``x402 serve`` with one signer, four for the second row
   (``X402_EVM_SIGNER_KEYS``, round-robin lanes), one for the node-limit loop; the official facilitator uses dev
   account 0 (bench/official_facilitator.py in bench/.venv-official, the SDK's own ``settle``);
3. for every (server, connections) cell a fresh set of distinct, valid v2 ``exact`` EIP-3009 payloads (payers 1-9,
   random 32-byte authorization nonces, a fresh ``payTo``), each POSTed to /settle exactly once by an aiohttp load
   generator holding N connections (wrk replays bodies round-robin, which would settle a payload twice);
4. the node's limit: the same kind of payloads as pre-signed ``transferWithAuthorization`` transactions from one
   signer with sequential nonces, sent by N concurrent senders (``eth_sendRawTransaction``, then the receipt), so
   broadcasts are pipelined and receipts awaited concurrently: what anvil itself takes;
5. after every cell, on chain: ``payTo``'s token balance grew by exactly (settled x amount), one Transfer log per
   settlement, and the Transfer logs' transactions are exactly the transactions the answers named (so no
   authorization moved funds twice and none was lost); for our rows, in Postgres: one confirmed journal row per
   settlement, distinct authorizations, distinct transactions, the same transactions. A mismatch VOIDs the figure.

Every process started here is stopped on exit, Ctrl-C included.

Usage: ``.venv/bin/python bench/settle.py [--quick] [--block-time 1] [--write-docs]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import resource
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import verify as vb  # noqa: E402
from chains.evm.devchain import DevChain, start_devchain  # noqa: E402
from chains.evm.settle import FIRST_POLL_DELAY, POLL_INTERVAL  # noqa: E402
from chains.evm.verify import TRANSFER_TOPIC, Authorization, parse_authorization  # noqa: E402

SECTION = "## Settle (bench/settle.py)"
BENCH_DB = "bench_settle"
TARGET_RATIO = 10.0
FUND_WEI = 10**22
say = vb.say


# --------------------------------------------------------------------------------------------- chain helpers


class Rpc:
    """A bare JSON-RPC client on one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self._id = 0

    async def __call__(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        async with self.session.post(self.url, json=body) as resp:
            doc = await resp.json(content_type=None)
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        return doc["result"]


def _word(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


async def balance_of(rpc: Rpc, token: str, owner: str) -> int:
    data = "0x70a08231" + _word(owner)[2:]
    return int(await rpc("eth_call", [{"to": token, "data": data}, "latest"]), 16)


async def fund(rpc: Rpc, keys: Sequence[str]) -> None:
    from eth_account import Account

    for key in keys:
        await rpc("anvil_setBalance", [Account.from_key(key).address, hex(FUND_WEI)])


# --------------------------------------------------------------------------------------------- results


@dataclasses.dataclass
class Cell:
    server: str
    connections: int
    sent: int = 0
    settled: int = 0
    refused: int = 0  # answered, but not success (or transport errors)
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    sample: str = ""
    chain_ok: bool = False
    chain_check: str = ""
    journal_ok: bool | None = None  # None: no journal to check (official, node limit)
    journal_check: str = ""
    cpu_server: float = 0.0
    cpu_anvil: float = 0.0
    cpu_client: float = 0.0
    cpu_other: float = 0.0

    @property
    def rate(self) -> float:
        return self.settled / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """Server CPU milliseconds per settlement (a figure that survives a busy box better than settles/s)."""
        return self.cpu_server * self.seconds / self.settled * 1000 if self.settled else 0.0

    @property
    def void(self) -> bool:
        return self.refused > 0 or self.settled == 0 or not self.chain_ok or self.journal_ok is False


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclasses.dataclass
class Load:
    latencies: list[float]
    txs: set[str]
    settled: int
    refused: int
    sample: str
    seconds: float


async def post_all(base: str, bodies: list[str], connections: int) -> Load:
    """POST each body to /settle once, from ``connections`` concurrent senders."""
    latencies: list[float] = []
    txs: set[str] = set()
    counts = {"settled": 0, "refused": 0}
    sample = [""]
    queue = iter(bodies)
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=180)

    async def sender(session: aiohttp.ClientSession) -> None:
        for body in queue:
            t0 = time.perf_counter()
            try:
                async with session.post(f"{base}/settle", data=body.encode(), headers=headers) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, text = 0, f"{type(exc).__name__}: {exc}"
            latencies.append(time.perf_counter() - t0)
            doc: Any = None
            with contextlib.suppress(ValueError):
                doc = json.loads(text)
            if status == 200 and isinstance(doc, dict) and doc.get("success") is True and doc.get("transaction"):
                counts["settled"] += 1
                txs.add(str(doc["transaction"]).lower())
            else:
                counts["refused"] += 1
                sample[0] = sample[0] or f"{status} {text[:300]}"

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(connections)))
        seconds = time.perf_counter() - t0
    return Load(latencies, txs, counts["settled"], counts["refused"], sample[0], seconds)


async def node_limit_load(rpc_url: str, raws: list[tuple[str, str]], connections: int) -> Load:
    """Send pre-signed transactions (nonce order) from ``connections`` senders; each then awaits its receipt."""
    latencies: list[float] = []
    txs: set[str] = set()
    counts = {"settled": 0, "refused": 0}
    sample = [""]
    queue = iter(raws)
    connector = aiohttp.TCPConnector(limit=connections * 2)

    async def sender(rpc: Rpc) -> None:
        for raw, tx_hash in queue:
            t0 = time.perf_counter()
            try:
                await rpc("eth_sendRawTransaction", [raw])
                delay = FIRST_POLL_DELAY
                while (receipt := await rpc("eth_getTransactionReceipt", [tx_hash])) is None:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, POLL_INTERVAL)
            except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                counts["refused"] += 1
                sample[0] = sample[0] or f"{type(exc).__name__}: {exc}"[:300]
                continue
            latencies.append(time.perf_counter() - t0)
            if int(receipt.get("status", "0x0"), 16) == 1:
                counts["settled"] += 1
                txs.add(tx_hash.lower())
            else:
                counts["refused"] += 1
                sample[0] = sample[0] or f"reverted: {tx_hash}"

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=180)) as session:
        rpc = Rpc(session, rpc_url)
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(rpc) for _ in range(connections)))
        seconds = time.perf_counter() - t0
    return Load(latencies, txs, counts["settled"], counts["refused"], sample[0], seconds)


def sign_transfers(chain: DevChain, bodies: list[str], key: str, nonce: int, gas: int, max_fee: int, tip: int) -> Any:
    """The bodies' authorizations as signed transferWithAuthorization transactions, sequential nonces from ``nonce``."""
    from eth_account import Account

    account = Account.from_key(key)
    out: list[tuple[str, str]] = []
    for i, body in enumerate(bodies):
        auth = parse_authorization(json.loads(body)["paymentPayload"]["payload"])
        assert isinstance(auth, Authorization)
        tx = {
            "chainId": chain.chain_id,
            "nonce": nonce + i,
            "to": chain.token_address,
            "value": 0,
            "data": "0x" + auth.transfer_calldata(split=True).hex(),
            "gas": gas,
            "type": 2,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        }
        signed = account.sign_transaction(tx)
        out.append(("0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()))
    return out


# --------------------------------------------------------------------------------------------- checks


async def check_chain(rpc: Rpc, chain: DevChain, pay_to: str, from_block: int, load: Load) -> tuple[bool, str]:
    """payTo's balance, its Transfer logs and their transactions against what the answers said."""
    balance = await balance_of(rpc, chain.token_address, pay_to)
    logs = await rpc(
        "eth_getLogs",
        [
            {
                "fromBlock": hex(from_block),
                "toBlock": "latest",
                "address": chain.token_address,
                "topics": [TRANSFER_TOPIC, None, _word(pay_to)],
            }
        ],
    )
    moved = sum(int(entry["data"], 16) for entry in logs)
    log_txs = [str(entry["transactionHash"]).lower() for entry in logs]
    want = load.settled * vb.AMOUNT
    ok = (
        balance == want
        and moved == want
        and len(logs) == load.settled
        and len(set(log_txs)) == len(log_txs)
        and set(log_txs) == load.txs
    )
    text = (
        f"balance +{balance:,} (want {want:,}), {len(logs):,} Transfer logs in {len(set(log_txs)):,} txs "
        f"for {load.settled:,} settled answers, answers' txs {'=' if set(log_txs) == load.txs else '!='} logs' txs"
    )
    return ok, text


async def check_journal(database_url: str, pay_to: str, load: Load) -> tuple[bool, str]:
    """One confirmed journal row per settlement, distinct authorizations and transactions, the answers' ones."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, payer, nonce, lower(tx_id) AS tx FROM settlements WHERE lower(pay_to) = lower($1)",
            pay_to,
        )
    finally:
        await conn.close()
    confirmed = [r for r in rows if r["status"] == "confirmed"]
    auths = {(r["payer"], r["nonce"]) for r in rows}
    txs = {r["tx"] for r in confirmed}
    ok = len(rows) == len(confirmed) == len(auths) == len(txs) == load.settled and txs == load.txs
    text = (
        f"{len(rows):,} rows, {len(confirmed):,} confirmed, {len(auths):,} authorizations, {len(txs):,} txs "
        f"(want {load.settled:,}), journal txs {'=' if txs == load.txs else '!='} answers' txs"
    )
    return ok, text


# --------------------------------------------------------------------------------------------- postgres


@contextlib.asynccontextmanager
async def database(tmp: Path) -> AsyncIterator[tuple[str, str]]:
    """DATABASE_URL as given, else a fresh ``bench_settle`` database on the local server, else an embedded one."""
    import asyncpg

    if os.environ.get("DATABASE_URL") or not await vb.pg_answers(vb.LOCAL_PG):
        async with vb.postgres(tmp) as found:
            yield found
        return
    admin = await asyncpg.connect(vb.LOCAL_PG)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    finally:
        await admin.close()
    yield vb.LOCAL_PG.rsplit("/", 1)[0] + "/" + BENCH_DB, f"local Postgres, database {BENCH_DB}"


# --------------------------------------------------------------------------------------------- runs


@dataclasses.dataclass
class Server:
    name: str
    base: str
    proc: Any
    journal: bool
    log: Path


async def measure(
    name: str,
    conns: int,
    count: int,
    chain: DevChain,
    rpc: Rpc,
    run: Any,
    *,
    pgid: int | None,
    anvil_pid: int | None,
    database_url: str | None,
    quiet_wait: float,
) -> Cell:
    """Sign ``count`` fresh payloads, run them through ``run(bodies)``, check chain (and journal)."""
    bodies, pay_to = await asyncio.to_thread(vb.make_bodies, chain, count)
    prepared = await run("prepare", bodies)
    from_block = int(await rpc("eth_blockNumber", []), 16)
    await vb.wait_quiet(quiet_wait)
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = (
        vb.cpu_seconds(pgid=pgid) if pgid else 0.0,
        vb.cpu_seconds(pid=anvil_pid) if anvil_pid else 0.0,
        own.ru_utime + own.ru_stime,
        vb.system_busy(),
    )
    wall0 = time.monotonic()
    load: Load = await run("go", prepared)
    wall = max(time.monotonic() - wall0, 1e-9)
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu1 = (
        vb.cpu_seconds(pgid=pgid) if pgid else 0.0,
        vb.cpu_seconds(pid=anvil_pid) if anvil_pid else 0.0,
        own.ru_utime + own.ru_stime,
        vb.system_busy(),
    )
    cell = Cell(
        server=name,
        connections=conns,
        sent=len(bodies),
        settled=load.settled,
        refused=load.refused,
        seconds=load.seconds,
        p50_ms=percentile(load.latencies, 0.50) * 1000,
        p99_ms=percentile(load.latencies, 0.99) * 1000,
        sample=load.sample,
        cpu_server=(cpu1[0] - cpu0[0]) / wall,
        cpu_anvil=(cpu1[1] - cpu0[1]) / wall,
        cpu_client=(cpu1[2] - cpu0[2]) / wall,
    )
    cell.cpu_other = max(0.0, (cpu1[3] - cpu0[3]) / wall - cell.cpu_server - cell.cpu_anvil - cell.cpu_client)
    cell.chain_ok, cell.chain_check = await check_chain(rpc, chain, pay_to, from_block, load)
    if database_url is not None:
        cell.journal_ok, cell.journal_check = await check_journal(database_url, pay_to, load)
    void = "  VOID" if cell.void else ""
    say(
        f"  c={conns:<3} {cell.rate:8,.1f} settles/s  p50 {cell.p50_ms:7.1f} ms  p99 {cell.p99_ms:7.1f} ms  "
        f"settled {cell.settled:,}/{cell.sent:,}  server CPU {cell.cpu_ms:.1f} ms/settle  "
        f"CPU server/anvil/client/other "
        f"{cell.cpu_server:.2f}/{cell.cpu_anvil:.2f}/{cell.cpu_client:.2f}/{cell.cpu_other:.2f}{void}"
    )
    say(f"    chain check {'ok' if cell.chain_ok else 'MISMATCH'}: {cell.chain_check}")
    if cell.journal_ok is not None:
        say(f"    journal check {'ok' if cell.journal_ok else 'MISMATCH'}: {cell.journal_check}")
    if cell.sample:
        say(f"    first refused answer: {cell.sample[:300]}")
    return cell


def http_run(base: str, conns: int) -> Any:
    async def run(phase: str, data: Any) -> Any:
        return data if phase == "prepare" else await post_all(base, data, conns)

    return run


def node_run(chain: DevChain, rpc: Rpc, key: str, conns: int) -> Any:
    from eth_account import Account

    address = Account.from_key(key).address

    async def run(phase: str, data: Any) -> Any:
        if phase == "go":
            return await node_limit_load(chain.rpc_url, data, conns)
        first = parse_authorization(json.loads(data[0])["paymentPayload"]["payload"])
        assert isinstance(first, Authorization)
        call = {"from": address, "to": chain.token_address, "data": "0x" + first.transfer_calldata(split=True).hex()}
        nonce, estimate, block, tip = await asyncio.gather(
            rpc("eth_getTransactionCount", [address, "pending"]),
            rpc("eth_estimateGas", [call]),
            rpc("eth_getBlockByNumber", ["latest", False]),
            rpc("eth_maxPriorityFeePerGas", []),
        )
        gas = int(estimate, 16) * 12 // 10
        max_fee = 4 * int(block["baseFeePerGas"], 16) + int(tip, 16)  # headroom for full blocks in --block-time mode
        return await asyncio.to_thread(sign_transfers, chain, data, key, int(nonce, 16), gas, max_fee, int(tip, 16))

    return run


async def start_servers(
    args: argparse.Namespace,
    procs: vb.Procs,
    chain: DevChain,
    database_url: str,
    tmp: Path,
    python: Path,
    keys: dict[int, list[str]],
) -> list[Server]:
    servers: list[Server] = []
    port = vb.free_port()
    log = tmp / "official.log"
    env = dict(os.environ, OFFICIAL_FACILITATOR_KEY=chain.facilitator_key)
    argv = [str(python), str(vb.BENCH / "official_facilitator.py"), "--port", str(port), "--rpc-url", chain.rpc_url,
            "--network", chain.network, "--mode", args.official_mode]  # fmt: skip
    say(f"starting: official facilitator on :{port}")
    proc = await procs.start("official", argv, env=env, log=log)
    base = f"http://127.0.0.1:{port}"
    servers.append(Server("official", base, proc, journal=False, log=log))
    for signers in args.signers:
        name = "ours" if signers == 1 else f"ours ({signers} signers)"
        port = vb.free_port()
        log = tmp / f"ours-{signers}.log"
        env = vb.our_env(chain, database_url, tmp / f"data-{signers}")
        env.pop("X402_EVM_SIGNER_KEY", None)
        env["X402_EVM_SIGNER_KEYS"] = ",".join(keys[signers])
        say(f"starting: {name} on :{port}")
        proc = await procs.start(name, [str(vb.X402_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                 env=env, log=log)  # fmt: skip
        servers.append(Server(name, f"http://127.0.0.1:{port}", proc, journal=True, log=log))
    return servers


async def bench(args: argparse.Namespace, command: str) -> int:
    if not vb.X402_BIN.exists():
        raise SystemExit(f"{vb.X402_BIN} not found: install the service into .venv first (pip install -e .)")
    official_python = await asyncio.to_thread(vb.official_venv)
    versions = await asyncio.to_thread(vb.venv_versions, official_python, ["x402", "web3", "eth-account"])
    procs = vb.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="x402-bench-settle-"))
    anvil = None
    cells: list[Cell] = []
    try:
        async with database(tmp) as (database_url, db_source), aiohttp.ClientSession() as session:
            say(f"Postgres: {db_source}")
            anvil, chain = await start_devchain()
            anvil_pid = vb.anvil_process_id(anvil)
            if anvil_pid is not None:
                vb._STARTED[anvil_pid] = False
            rpc = Rpc(session, chain.rpc_url)
            if args.block_time:
                await rpc("evm_setAutomine", [False])
                await rpc("evm_setIntervalMining", [args.block_time])
            say(f"anvil at {chain.rpc_url} ({f'a block every {args.block_time} s' if args.block_time else 'automine'})")
            keys = {n: ["0x" + secrets.token_hex(32) for _ in range(n)] for n in args.signers}
            node_key = "0x" + secrets.token_hex(32)
            await fund(rpc, [node_key, *(k for group in keys.values() for k in group)])
            servers = await start_servers(args, procs, chain, database_url, tmp, official_python, keys)
            for server in servers:
                await vb.wait_http(f"{server.base}/readyz" if server.journal else f"{server.base}/healthz",
                                   server.proc, server.log, server.name)  # fmt: skip

            for server in servers:
                count = args.official_payloads if server.name == "official" else args.payloads
                say(f"{server.name}: warm-up ({args.warmup} payloads) ...")
                warm = await measure(
                    server.name,
                    args.connections[0],
                    args.warmup,
                    chain,
                    rpc,
                    http_run(server.base, 4),
                    pgid=None,
                    anvil_pid=None,
                    database_url=None,
                    quiet_wait=0,
                )
                if warm.void:
                    raise RuntimeError(f"{server.name}: the warm-up settles failed: {warm.sample}")
                for conns in args.connections:
                    if server.proc.returncode is not None:
                        raise RuntimeError(f"{server.name} exited with code {server.proc.returncode}")
                    cells.append(
                        await measure(
                            server.name,
                            conns,
                            count,
                            chain,
                            rpc,
                            http_run(server.base, conns),
                            pgid=server.proc.pid,
                            anvil_pid=anvil_pid,
                            database_url=database_url if server.journal else None,
                            quiet_wait=args.quiet_wait,
                        )
                    )
            say("node limit: pre-signed transferWithAuthorization transactions, one signer ...")
            for conns in args.connections:
                cells.append(
                    await measure(
                        "node limit",
                        conns,
                        args.payloads,
                        chain,
                        rpc,
                        node_run(chain, rpc, node_key, conns),
                        pgid=None,
                        anvil_pid=anvil_pid,
                        database_url=None,
                        quiet_wait=args.quiet_wait,
                    )
                )
    finally:
        await vb.teardown(procs, anvil, tmp)

    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": vb.machine_note(),
        "versions": versions,
        "database": db_source,
        "load": os.getloadavg(),
    }
    section = render(cells, args, info, command)
    header = section.split("\n", 1)[0]
    say("")
    say(section)
    if args.write_docs or not (args.quick or args.no_docs):
        vb.write_docs(section, header)
        say(f"updated {vb.DOCS.relative_to(ROOT)}")
    else:
        say(f"({vb.DOCS.relative_to(ROOT)} not updated; add --write-docs)")
    return 1 if any(c.void for c in cells) else 0


# --------------------------------------------------------------------------------------------- report


def table(cells: list[Cell]) -> str:
    official = {c.connections: c for c in cells if c.server == "official" and not c.void}
    node = {c.connections: c for c in cells if c.server == "node limit" and not c.void}

    def ratio(c: Cell, base: dict[int, Cell]) -> str:
        b = base.get(c.connections)
        return f"{c.rate / b.rate:.2f}x" if b is not None and b.rate > 0 else "n/a"

    lines = [
        "| run | conns | settled | settles/s | p50 ms | p99 ms | / official | / node limit | chain check | journal "
        "check | server CPU ms / settle | CPU cores: server / anvil / client / other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for c in cells:
        void = " **VOID**" if c.void else ""
        journal = "-" if c.journal_ok is None else ("ok" if c.journal_ok else "**MISMATCH**")
        lines.append(
            f"| {c.server}{void} | {c.connections} | {c.settled:,}/{c.sent:,} | {c.rate:,.1f} | {c.p50_ms:,.1f} "
            f"| {c.p99_ms:,.1f} | {ratio(c, official)} | {ratio(c, node)} "
            f"| {'ok' if c.chain_ok else '**MISMATCH**'} | {journal} | {c.cpu_ms:.1f} "
            f"| {c.cpu_server:.2f} / {c.cpu_anvil:.2f} / {c.cpu_client:.2f} / {c.cpu_other:.2f} |"
        )
    return "\n".join(lines)


def render(cells: list[Cell], args: argparse.Namespace, info: dict[str, Any], command: str) -> str:
    official = {c.connections: c for c in cells if c.server == "official"}
    low = min(args.connections)
    targets = []
    for c in cells:
        if not c.server.startswith("ours") or c.connections != low:
            continue
        b = official.get(low)
        r = c.rate / b.rate if b and b.rate and not b.void and not c.void else 0.0
        targets.append(
            f"- {c.server} at {low} connections: {r:.1f}x the official facilitator "
            f"(target >= {TARGET_RATIO:g}x: {'ok' if r >= TARGET_RATIO else 'MISSED'})"
        )
    checks = [
        f"  - {c.server} c={c.connections}: chain: {c.chain_check}"
        + (f"; journal: {c.journal_check}" if c.journal_check else "")
        for c in cells
    ]
    load = ", ".join(f"{x:.2f}" for x in info["load"])
    mining = f"a block every {args.block_time} s (`--block-time`)" if args.block_time else "automine (a block per tx)"
    lines = [
        f"{SECTION[:-1]} --block-time {args.block_time})" if args.block_time else SECTION,
        "",
        f"Measured {info['date']} with `{command}`{' (quick mode: indicative only)' if args.quick else ''}; "
        f"load average at the end {load}.",
        "",
        f"- Machine: {info['machine']}.",
        f"- Chain: anvil, {mining}; the dev token's `transferWithAuthorization`, {vb.AMOUNT} atomic units each.",
        f"- Payloads: per cell, fresh distinct v2 `exact` EIP-3009 authorizations (payers 1-9, random nonces, a new "
        f"payTo), each POSTed to /settle exactly once from N concurrent keep-alive connections (aiohttp; wrk would "
        f"replay bodies); {args.official_payloads} per official cell, {args.payloads} per other cell, after "
        f"{args.warmup} warm-up settles per server. settles/s = settled / wall time of the cell.",
        f"- Official: x402 {info['versions'].get('x402', '?')} (web3 {info['versions'].get('web3', '?')}) behind "
        f"`bench/official_facilitator.py` (`--mode {args.official_mode}`: the SDK's `settle`, which waits for each "
        "receipt), signer dev account 0.",
        f"- Ours: `x402 serve` (1 worker), {info['database']}, anonymous callers (`X402_REQUIRE_API_KEYS=0`); "
        "`ours` has one signer, `ours (N signers)` N signers in `X402_EVM_SIGNER_KEYS` (round-robin lanes), all "
        "fresh accounts funded on anvil.",
        "- Node limit: the same kind of authorizations as pre-signed transactions of one signer with sequential "
        "nonces; N senders each `eth_sendRawTransaction` then poll the receipt (same schedule as ours): what anvil "
        "itself takes, with no facilitator work at all.",
        "- Checks after every cell (on chain: payTo's balance = settled x amount, one Transfer log per settlement, "
        "the logs' transactions = the answers' transactions; Postgres: one confirmed journal row per settlement, "
        "distinct authorizations and transactions, the answers' ones). Any refused answer or mismatch VOIDs a row.",
        "- CPU columns: average cores busy during the cell (from /proc): the server's process group, anvil, this "
        "bench process (load generator), everything else (Postgres, other jobs); a high `other` means the box was "
        "busy and settles/s are low for everyone. Server CPU ms / settle is the server's CPU time per settlement.",
        "",
        table(cells),
        "",
        "Targets:",
        "",
        *(targets or ["- (no `ours` row)"]),
        "",
        "Checks:",
        "",
        *checks,
        "",
    ]
    if any(c.void for c in cells):
        lines += [f"**{sum(c.void for c in cells)} row(s) VOID**: see the table and the checks.", ""]
    lines += busy_note(cells)
    return "\n".join(lines)


def busy_note(cells: list[Cell]) -> list[str]:
    """A warning when other work on the box starved the run (the rows then do not compare well)."""
    other = sum(c.cpu_other for c in cells) / len(cells) if cells else 0.0
    if other <= vb.NOISY_OTHER_CORES:
        return []
    node = max((c.rate for c in cells if c.server == "node limit"), default=0.0)
    below = node and any(c.rate > node for c in cells if c.server != "node limit")
    return [
        f"**Busy box**: other work used {other:.2f} cores on average during the cells (column `other`), so every "
        "row is CPU-starved and rows measured minutes apart are not comparable"
        + (" (here the node-limit loop measured below a server)" if below else "")
        + "; the server CPU ms / settle column holds up better. Re-run on a quiet box.",
        "",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark POST /settle: ours vs the official facilitator vs the node.")
    p.add_argument("--quick", action="store_true", help="fewer payloads; docs/benchmarks.md not updated")
    p.add_argument("--payloads", type=int, help="payloads per cell for ours and the node limit (default 2000)")
    p.add_argument("--official-payloads", type=int, help="payloads per official cell (default 300)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up settles per server (default 20)")
    p.add_argument("--connections", default="16,64", help="comma-separated connection counts (default 16,64)")
    p.add_argument("--signers", default="1,4", help="comma-separated signer counts of our rows (default 1,4)")
    p.add_argument("--block-time", type=int, default=0, help="mine a block every N s instead of automine")
    p.add_argument("--official-mode", choices=("threads", "async"), default="async")
    p.add_argument("--quiet-wait", type=float, default=10.0, help="max seconds to wait for an idle box per cell")
    p.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md even with --quick")
    args = p.parse_args(argv)
    args.payloads = args.payloads or (400 if args.quick else 2000)
    args.official_payloads = args.official_payloads or (100 if args.quick else 300)
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    args.signers = [int(s) for s in args.signers.split(",") if s.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/settle.py", *argv])

    return vb.run_bench(lambda: bench(args, command))


if __name__ == "__main__":
    raise SystemExit(main())
