"""RpcPool: failover across URLs, ChainUnavailable when none answers, per-URL circuit breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from chains.evm.devchain import DevChain
from chains.evm.rpc import RpcError, RpcPool
from tests.harness.services import free_port
from x402.errors import ChainUnavailable


def _answer(call: dict[str, Any]) -> str:
    """eth_chainId's answer, or the hex of an ``echo`` call's number."""
    params = call.get("params") or []
    return hex(int(params[0])) if params else "0x7a69"


class FlakyServer:
    """A JSON-RPC endpoint that answers HTTP 500 while ``failing``, else eth_chainId; counts requests."""

    def __init__(self, *, batches: bool = True) -> None:
        self.failing = True
        self.hits = 0
        self.batches = batches
        self.sizes: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.failing:
            return web.Response(status=500, text="boom")
        body = await request.json()
        if isinstance(body, list):
            self.sizes.append(len(body))
            if not self.batches:  # like a node without batch support: one error object
                return web.json_response({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no"}})
            answers = [{"jsonrpc": "2.0", "id": b["id"], "result": _answer(b)} for b in body]
            return web.json_response(list(reversed(answers)))  # order is not guaranteed by JSON-RPC
        self.sizes.append(1)
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": _answer(body)})


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyServer, str]]:
    server = FlakyServer()
    app = web.Application()
    app.router.add_post("/", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield server, f"http://127.0.0.1:{port}/"
    await runner.cleanup()


@pytest.fixture
def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/"  # nothing listens there: connection refused


@pytest.fixture
async def pools() -> AsyncIterator[Callable[..., RpcPool]]:
    made: list[RpcPool] = []

    def make(*urls: str, **kw: Any) -> RpcPool:
        pool = RpcPool("eip155:31337", list(urls), timeout=kw.pop("timeout", 2.0), **kw)
        made.append(pool)
        return pool

    yield make
    for p in made:
        await p.close()


async def test_first_dead_second_serves(devchain: DevChain, dead_url: str, pools: Callable[..., RpcPool]) -> None:
    pool = pools(dead_url, devchain.rpc_url)
    assert await pool.call("eth_chainId") == "0x7a69"
    assert pool.breaker_state() == ["closed", "closed"]


async def test_all_dead(dead_url: str, flaky: tuple[FlakyServer, str], pools: Callable[..., RpcPool]) -> None:
    pool = pools(dead_url, flaky[1])
    with pytest.raises(ChainUnavailable) as info:
        await pool.call("eth_chainId")
    assert info.value.code == "chain_unavailable"
    assert info.value.status == 503
    assert "127.0.0.1" not in str(info.value)  # URLs (which may carry API keys) stay out of errors


async def test_rpc_error_is_an_answer(devchain: DevChain, pools: Callable[..., RpcPool]) -> None:
    pool = pools(devchain.rpc_url)
    with pytest.raises(RpcError) as info:
        await pool.call("eth_noSuchMethod")
    assert info.value.code != 0
    assert pool.breaker_state() == ["closed"]


async def test_breaker_opens_and_recovers(
    devchain: DevChain, flaky: tuple[FlakyServer, str], pools: Callable[..., RpcPool]
) -> None:
    server, url = flaky
    pool = pools(url, devchain.rpc_url, breaker_cooldown=0.3)
    for _ in range(3):
        assert await pool.call("eth_chainId") == "0x7a69"  # served by the second URL
    assert server.hits == 3
    assert pool.breaker_state() == ["open", "closed"]
    for _ in range(5):
        await pool.call("eth_chainId")
    assert server.hits == 3  # open: skipped
    await asyncio.sleep(0.35)
    assert pool.breaker_state()[0] == "half-open"
    await pool.call("eth_chainId")  # one trial, still failing: open again
    assert server.hits == 4
    assert pool.breaker_state()[0] == "open"
    server.failing = False
    await asyncio.sleep(0.35)
    assert await pool.call("eth_chainId") == "0x7a69"
    assert server.hits == 5
    assert pool.breaker_state() == ["closed", "closed"]


async def test_half_open_allows_one_trial(flaky: tuple[FlakyServer, str], pools: Callable[..., RpcPool]) -> None:
    server, url = flaky
    pool = pools(url, breaker_cooldown=0.2)
    for _ in range(3):
        with pytest.raises(ChainUnavailable):
            await pool.call("eth_chainId")
    with pytest.raises(ChainUnavailable, match="circuit breakers open"):
        await pool.call("eth_chainId")
    await asyncio.sleep(0.25)
    server.failing = False
    calls: list[Awaitable[object]] = [pool.call("eth_chainId") for _ in range(5)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(1 for r in results if r == "0x7a69") >= 1
    assert server.hits == 4  # only the trial request reached the recovering URL


async def test_concurrent_calls_travel_as_one_batch(
    flaky: tuple[FlakyServer, str], pools: Callable[..., RpcPool]
) -> None:
    server, url = flaky
    server.failing = False
    pool = pools(url)
    results = await asyncio.gather(*(pool.call("echo", [str(i)]) for i in range(40)))
    assert results == [hex(i) for i in range(40)]  # each caller gets its own answer, whatever the order
    assert server.sizes == [32, 8]  # one turn of the loop: batches of at most MAX_BATCH
    assert pool.calls == 40


async def test_node_without_batches_gets_single_calls(pools: Callable[..., RpcPool]) -> None:
    server = FlakyServer(batches=False)
    server.failing = False
    app = web.Application()
    app.router.add_post("/", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        pool = pools(f"http://127.0.0.1:{port}/")
        results = await asyncio.gather(*(pool.call("echo", [str(i)]) for i in range(3)))
        assert results == ["0x0", "0x1", "0x2"]
        assert pool.batching is False
        assert server.sizes == [3, 1, 1, 1]
        assert await pool.call("echo", ["7"]) == "0x7"
    finally:
        await runner.cleanup()
