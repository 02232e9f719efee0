"""Fault injection for the payer side: sellers and facilitators that really settle on anvil, then fail as real
peers do (hang past the client's timeout, 502, a fresh 402, a dropped connection), plus a private anvil whose clock
a test may move forward, and on-chain / Postgres counters to prove nothing was paid twice."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from chains.evm.devchain import DevChain, deploy_dev_token
from tests.harness.evm import rpc
from tests.harness.services import anvil_binary, free_port
from x402.wire.codec import PAYMENT_REQUIRED, PAYMENT_SIGNATURE, X_PAYMENT

#: Modes a faulty peer can be in (see ``Faults``).
MODES: Final = ("ok", "hang", "late", "502", "402", "reset", "slow", "nosettle_502")
TRANSFER_TOPIC: Final = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


@dataclass
class Faults:
    """How the peer misbehaves once the payment reached it.

    ``hang``: settle, then answer nothing until ``release`` (the client times out); ``late``: wait for ``release``
    (the client times out meanwhile), then settle; ``502``: settle, then 502; ``402``: settle, then a fresh 402;
    ``reset``: settle, then drop the connection; ``slow``: wait ``delay`` seconds, then settle and answer
    normally; ``nosettle_502``: 502 without settling; ``ok``: behave.
    """

    mode: str = "ok"
    delay: float = 1.0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    handled: int = 0
    challenge: str | None = None
    #: every distinct payment header that reached the peer (a client re-sending the same one is harmless)
    signatures: set[str] = field(default_factory=set)
    tasks: list[asyncio.Future[web.StreamResponse]] = field(default_factory=list)


def _paid(request: web.Request) -> bool:
    return PAYMENT_SIGNATURE in request.headers or X_PAYMENT in request.headers


def faulty(faults: Faults, applies: Callable[[web.Request], bool] = _paid) -> Any:
    """An outermost aiohttp middleware injecting ``faults`` into the requests ``applies`` selects."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not applies(request):
            resp = await handler(request)
            if resp.status == 402 and PAYMENT_REQUIRED in resp.headers:
                faults.challenge = resp.headers[PAYMENT_REQUIRED]
            return resp
        faults.handled += 1
        faults.signatures.add(request.headers.get(PAYMENT_SIGNATURE) or request.headers.get(X_PAYMENT) or "")
        mode = faults.mode
        if mode == "nosettle_502":
            return web.json_response({"error": "bad gateway"}, status=502)
        if mode == "slow":
            await asyncio.sleep(faults.delay)
        if mode == "late":
            # like a seller that settles in a job of its own: the client hanging up does not stop it
            task = asyncio.ensure_future(_after(faults.release, handler, request))
            faults.tasks.append(task)
            return await asyncio.shield(task)
        resp = await handler(request)  # the real thing: verify, handler, settle on anvil
        if mode in ("ok", "slow", "late"):
            return resp
        if mode == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(faults.release.wait(), 300)
            return resp
        if mode == "502":
            return web.json_response({"error": "upstream timed out"}, status=502)
        if mode == "402":
            headers = {PAYMENT_REQUIRED: faults.challenge} if faults.challenge else {}
            return web.json_response({"error": "payment required"}, status=402, headers=headers)
        if mode == "reset":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError
        raise AssertionError(f"unknown fault mode {mode!r}")

    return middleware


async def _after(release: asyncio.Event, handler: Handler, request: web.Request) -> web.StreamResponse:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(release.wait(), 300)
    resp: web.StreamResponse = await handler(request)
    return resp


def settle_only(request: web.Request) -> bool:
    """Selects a facilitator's ``POST /settle``."""
    return request.method == "POST" and request.path.rstrip("/").endswith("/settle")


# ------------------------------------------------------------------------------------------------ private anvil


@contextlib.contextmanager
def private_devchain() -> Iterator[DevChain]:
    """An anvil of its own with TestUSDC (for tests that move the chain's clock)."""
    port = free_port()
    proc = subprocess.Popen(
        [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--silent", "--chain-id", "31337"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                asyncio.run(deploy_dev_token(url))
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield DevChain(rpc_url=url)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


async def warp(chain: DevChain, seconds: int) -> None:
    """Move the chain's clock forward and mine a block at the new time."""
    await rpc(chain.rpc_url, "evm_increaseTime", hex(seconds))
    await rpc(chain.rpc_url, "evm_mine")


# ------------------------------------------------------------------------------------------------ counters


async def transfers_to(chain: DevChain, pay_to: str) -> int:
    """How many token Transfer events paid ``pay_to`` (all blocks)."""
    topic = "0x" + "00" * 12 + pay_to.lower().removeprefix("0x")
    logs = await rpc(
        chain.rpc_url,
        "eth_getLogs",
        {
            "address": chain.token_address,
            "fromBlock": "0x0",
            "toBlock": "latest",
            "topics": [TRANSFER_TOPIC, None, topic],
        },
    )
    return len(logs)


async def settlement_rows(database_url: str, pay_to: str) -> dict[str, int]:
    """The facilitator journal's rows paying ``pay_to``, counted by status."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM settlements WHERE lower(pay_to) = lower($1) GROUP BY status", pay_to
        )
    finally:
        await conn.close()
    return {r["status"]: int(r["n"]) for r in rows}


async def final_settlement_rows(database_url: str, pay_to: str, timeout: float = 5.0) -> dict[str, int]:
    """``settlement_rows`` once no row is still ``submitted`` (or after ``timeout``).

    A facilitator writes its row's final status after the receipt, which can come a moment after the Transfer event
    is visible to a test polling the chain.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await settlement_rows(database_url, pay_to)
        if "submitted" not in rows or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------------------------------------ a faulty seller

PRICE: Final = 10_000
#: The seller's offer validity: the payer's validBefore is about this far ahead of the wall clock.
OFFER_SECONDS: Final = 60


@dataclass
class Seller:
    """A paywalled ``GET /item`` settled by the project's facilitator on anvil, behind ``faults``."""

    url: str
    pay_to: str
    faults: Faults
    server: Any

    async def close(self) -> None:
        """Let hanging handlers finish, then stop the server."""
        self.faults.release.set()
        for task in self.faults.tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await self.server.close()


async def start_seller(chain: DevChain, database_url: str, faults: Faults | None = None) -> Seller:
    """Start a faulty seller on 127.0.0.1:0 with a fresh, funded facilitator signer."""
    from tests.harness.paychain import EvmChain, offer_on, paywalled

    faults = faults or Faults()
    on = EvmChain(chain)
    pay_to = on.payee()
    routes = {("GET", "/item"): offer_on(on, pay_to, PRICE, max_timeout_seconds=OFFER_SECONDS)}
    server = await paywalled(on, database_url, {"/item": _item}, routes, middlewares=(faulty(faults),))
    return Seller(str(server.make_url("/item")), pay_to, faults, server)


async def _item(request: web.Request) -> web.Response:
    return web.json_response({"item": True})


async def start_remote_seller(
    chain: DevChain, database_url: str, faults: Faults | None = None, *, settle_timeout: float = 3.0
) -> Seller:
    """A paywalled ``GET /item`` whose paywall settles through a RemoteFacilitator, and a facilitator (the
    project's app, on anvil) that settles and then fails per ``faults`` on ``POST /settle``."""
    from tests.harness.paychain import EvmChain, offer_on, serve
    from x402.facilitator.remote import RemoteFacilitator
    from x402.paywall import Paywall

    faults = faults or Faults()
    on = EvmChain(chain)
    facilitator_app = on.app(await on.settings(database_url, facilitator=True))
    facilitator_app.middlewares.insert(0, faulty(faults, settle_only))
    facilitator = await serve(facilitator_app)
    remote = RemoteFacilitator(str(facilitator.make_url("/")), settle_timeout=settle_timeout)
    pay_to = on.payee()
    app = web.Application()
    app.router.add_get("/item", _item)
    offer = offer_on(on, pay_to, PRICE, max_timeout_seconds=OFFER_SECONDS)
    Paywall(remote, routes={("GET", "/item"): offer}).setup(app)
    provider = await serve(app)
    return Seller(str(provider.make_url("/item")), pay_to, faults, _Both(provider, facilitator, remote))


@dataclass
class _Both:
    provider: Any
    facilitator: Any
    remote: Any

    async def close(self) -> None:
        await self.provider.close()
        await self.remote.close()
        await self.facilitator.close()
