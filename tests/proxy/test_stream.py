"""Routed calls stream the paid answer: headers and receipt first, the body as it arrives, limits while streaming.

The upstream is our paywall on anvil (real EIP-3009 payments); its handlers stream through aiohttp payloads the test
controls, so the paywall still settles before the first byte and sends its receipt header.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chains.evm.devchain import DevChain
from tests.harness.evm import token_balance
from tests.harness.paychain import EvmChain, offer_on, paywalled
from tests.proxy.conftest import PRICE, listing, receipt
from tests.wallets.conftest import new_wallet
from x402.paywall.middleware import RouteKey
from x402.service.proxy.routes import CLIENT_GONE
from x402.wire.codec import PAYMENT_RESPONSE

FIRST = b"first chunk of the answer\n"
REST = b"and the rest, once the test lets it go\n"
LIMIT = 4096
BIG = 10 * 1024 * 1024
PIECE = 64 * 1024
#: How far the upstream may run ahead of what the client has received (socket buffers, the stream readers' pause
#: thresholds); far below BIG, so a proxy holding the body whole can never let the big upstream finish.
WINDOW = 2 * 1024 * 1024
WAIT = 20.0


@dataclass
class Rig:
    """The streaming upstream: its base URL and who gets paid, and the knobs and counters the test holds."""

    base_url: str
    pay_to: str
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0  # bytes the big upstream handed to its socket
    received: int = 0  # bytes the test client has read of it
    ahead: int = 0  # the most the upstream ever was ahead of the client
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        """A route of the upstream."""
        return self.base_url + path


@pytest.fixture
async def rig(chain: EvmChain, database_url: str) -> AsyncIterator[Rig]:
    """Paid routes that stream: /drip waits for ``gate`` after its first chunk, /endless outgrows LIMIT without
    a Content-Length, /declared declares more than LIMIT, /dies breaks off mid-body, /chatty keeps writing after
    ``gate``, /big sends BIG bytes never more than WINDOW ahead of the client."""
    out = Rig("", chain.payee())

    def streamed(chunks: Any, content_type: str = "application/octet-stream") -> web.Response:
        return web.Response(body=chunks, content_type=content_type)  # an async iterable: sent chunked, as it comes

    async def drip(request: web.Request) -> web.Response:
        async def body() -> AsyncIterator[bytes]:
            yield FIRST
            await asyncio.wait_for(out.gate.wait(), WAIT)
            yield REST
            out.finished.set()

        return streamed(body(), "text/plain")

    async def endless(request: web.Request) -> web.Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"y" * 1024
                await asyncio.sleep(0)

        return streamed(body())

    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"z" * (LIMIT * 2), content_type="application/octet-stream")

    async def dies(request: web.Request) -> web.Response:
        async def body() -> AsyncIterator[bytes]:
            yield FIRST
            await asyncio.wait_for(out.gate.wait(), WAIT)
            assert request.transport is not None
            request.transport.abort()  # the upstream process dies mid-body
            yield b""

        return streamed(body())

    async def chatty(request: web.Request) -> web.Response:
        async def body() -> AsyncIterator[bytes]:
            yield FIRST
            await asyncio.wait_for(out.gate.wait(), WAIT)
            for _ in range(200):
                yield b"c" * 1024
                await asyncio.sleep(0.005)
            out.finished.set()

        return streamed(body())

    async def big(request: web.Request) -> web.Response:
        async def body() -> AsyncIterator[bytes]:
            for i in range(BIG // PIECE):
                yield bytes([i % 251]) * PIECE
                out.sent += PIECE
                out.ahead = max(out.ahead, out.sent - out.received)
                while out.sent - out.received > WINDOW:  # wait for the client to read: flow control end to end
                    out.progress.clear()
                    await asyncio.wait_for(out.progress.wait(), WAIT)
            out.finished.set()

        return streamed(body())

    handlers = {
        "/drip": drip,
        "/endless": endless,
        "/declared": declared,
        "/dies": dies,
        "/chatty": chatty,
        "/big": big,
    }
    offer = offer_on(chain, out.pay_to, PRICE, max_timeout_seconds=120)
    routes: dict[RouteKey, Any] = {("GET", path): offer for path in handlers}
    server: TestServer = await paywalled(chain, database_url, handlers, routes)
    out.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield out
    finally:
        out.gate.set()
        await server.close()


async def _setup(
    wallet_service: Any, devchain: DevChain, rig: Rig, path: str, **settings: Any
) -> tuple[TestClient[Any, Any], dict[str, Any], dict[str, Any]]:
    client = await wallet_service(**settings)
    res = await listing(client, devchain, rig.url(path), rig.pay_to)
    wallet = await new_wallet(client, EvmChain(devchain), {"totalBudget": str(PRICE * 10)})
    return client, res, wallet


async def _call(client: TestClient[Any, Any], res: dict[str, Any], wallet: dict[str, Any]) -> Any:
    return await asyncio.wait_for(client.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]}), WAIT)


async def _row(client: TestClient[Any, Any], call_id: str, code: str | None = None) -> dict[str, Any]:
    """The call's row as GET /v1/calls shows it (waiting, a bounded while, for a cut stream's code to land)."""
    for _ in range(200):
        r = await client.get("/v1/calls")
        found: dict[str, dict[str, Any]] = {c["id"]: c for c in (await r.json())["calls"]}
        row = found.get(call_id)
        if row is not None and (code is None or row["code"] == code):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} never showed code {code}: {found.get(call_id)}")


async def _upstream_note(database_url: str, payment_id: str) -> dict[str, Any]:
    """What the wallet ledger keeps of the paid answer (wallet_payments.result -> upstream)."""
    conn = await asyncpg.connect(database_url)
    try:
        raw = await conn.fetchval("SELECT result->'upstream' FROM wallet_payments WHERE id = $1", uuid.UUID(payment_id))
    finally:
        await conn.close()
    doc: dict[str, Any] = json.loads(raw)
    return doc


async def _note(database_url: str, payment_id: str, key: str = "bytes") -> dict[str, Any]:
    for _ in range(200):
        doc = await _upstream_note(database_url, payment_id)
        if key in doc:
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment {payment_id}: no {key} noted: {doc}")


async def test_first_chunk_and_receipt_arrive_before_the_upstream_finishes(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/drip")
    before = await token_balance(devchain, rig.pay_to)
    r = await _call(client, res, wallet)  # the headers are here while the upstream still holds its body back
    assert r.status == 200
    mine = receipt(r)
    assert (mine["paid"], mine["amount"]) == (True, str(PRICE))
    assert r.headers[PAYMENT_RESPONSE]
    assert await token_balance(devchain, rig.pay_to) == before + PRICE  # paid before the body is done
    first = await asyncio.wait_for(r.content.readexactly(len(FIRST)), WAIT)
    assert first == FIRST
    assert not rig.gate.is_set()  # the upstream still holds the rest back: it cannot have finished
    assert not rig.finished.is_set()
    rig.gate.set()
    assert await asyncio.wait_for(r.read(), WAIT) == REST
    row = await _row(client, mine["callId"])
    assert (row["status"], row["code"], row["amount"]) == ("paid", None, str(PRICE))
    assert row["fee"] == mine["fee"]
    note = await _note(database_url, mine["paymentId"])
    assert (note["bytes"], note["complete"], note["outcome"]) == (len(FIRST + REST), True, None)
    assert note["body"] == (FIRST + REST).decode()  # small and whole: kept for a replay of its Idempotency-Key


async def test_a_replay_of_a_streamed_answer_gives_the_kept_body_once_paid(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    rig.gate.set()
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/drip")
    key = {"Idempotency-Key": f"stream-{uuid.uuid4()}"}
    before = await token_balance(devchain, rig.pay_to)
    r = await client.get(f"/v1/proxy/{res['id']}/", headers={"X402-Wallet": wallet["id"], **key})
    assert r.status == 200
    assert await r.read() == FIRST + REST
    await _note(database_url, receipt(r)["paymentId"])
    again = await client.get(f"/v1/proxy/{res['id']}/", headers={"X402-Wallet": wallet["id"], **key})
    assert again.status == 200, await again.text()
    assert await again.read() == FIRST + REST
    assert receipt(again)["paymentId"] == receipt(r)["paymentId"]
    assert (receipt(again)["replayed"], receipt(again)["paid"], receipt(again)["fee"]) == (True, False, "0")
    assert await token_balance(devchain, rig.pay_to) == before + PRICE  # paid once
    r = await client.get("/v1/calls/summary")
    [summary] = (await r.json())["resources"]
    assert (summary["calls"], summary["paid"], summary["amount"]) == (2, 1, str(PRICE))  # the fee owed once


async def test_a_body_over_the_limit_without_content_length_is_cut_mid_stream_and_recorded(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/endless", proxy_max_bytes=LIMIT)
    r = await _call(client, res, wallet)
    assert r.status == 200  # the headers went out before the size was known
    mine = receipt(r)
    got = bytearray()

    async def drain() -> None:
        async for chunk in r.content.iter_any():
            got.extend(chunk)

    with pytest.raises(aiohttp.ClientPayloadError):  # the client sees an incomplete body, not a complete short one
        await asyncio.wait_for(drain(), WAIT)
    assert len(got) <= LIMIT  # (aiohttp's reader drops what it buffered once the cut is seen)
    assert set(got) <= {ord("y")}
    row = await _row(client, mine["callId"], "upstream_too_large")
    assert (row["status"], row["amount"], row["fee"]) == ("paid", str(PRICE), mine["fee"])  # paid, fee owed once
    note = await _note(database_url, mine["paymentId"])
    assert (note["complete"], note["outcome"]) == (False, "upstream_too_large")
    assert note["bytes"] == LIMIT  # up to the limit, then cut
    assert "body" not in note  # cut: nothing kept for a replay
    r = await client.get("/v1/calls")
    assert len((await r.json())["calls"]) == 1  # one row, one fee


async def test_a_declared_length_over_the_limit_is_refused_before_streaming_after_paying(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/declared", proxy_max_bytes=LIMIT)
    before = await token_balance(devchain, rig.pay_to)
    r = await _call(client, res, wallet)
    doc = await r.json()  # the problem, not a byte of the upstream's body
    assert (r.status, doc["code"], doc["upstream"]) == (502, "upstream_too_large", "127.0.0.1")
    assert doc["receipt"]["paid"] is True  # the paid retry's headers only come after paying: the receipt says so
    assert await token_balance(devchain, rig.pay_to) == before + PRICE
    row = await _row(client, doc["receipt"]["callId"])
    assert (row["status"], row["code"], row["amount"]) == ("paid", "upstream_too_large", str(PRICE))
    # bought under a key, the answer was never kept: a replay says so and pays nothing
    key = {"X402-Wallet": wallet["id"], "Idempotency-Key": f"declared-{uuid.uuid4()}"}
    r = await client.get(f"/v1/proxy/{res['id']}/", headers=key)
    assert r.status == 502
    r = await client.get(f"/v1/proxy/{res['id']}/", headers=key)
    doc = await r.json()
    assert (r.status, doc["code"]) == (409, "response_not_replayable"), doc
    assert doc["receipt"]["replayed"] is True
    assert await token_balance(devchain, rig.pay_to) == before + 2 * PRICE


async def test_an_upstream_dying_mid_body_cuts_the_stream_and_is_recorded(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/dies")
    r = await _call(client, res, wallet)
    assert r.status == 200
    mine = receipt(r)
    assert await asyncio.wait_for(r.content.readexactly(len(FIRST)), WAIT) == FIRST
    rig.gate.set()
    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(r.read(), WAIT)
    row = await _row(client, mine["callId"], "upstream_broken")
    assert (row["status"], row["amount"]) == ("paid", str(PRICE))
    note = await _note(database_url, mine["paymentId"])
    assert (note["bytes"], note["complete"], note["outcome"]) == (len(FIRST), False, "upstream_broken")


async def test_a_client_leaving_mid_body_is_recorded_once(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/chatty")
    r = await _call(client, res, wallet)
    assert r.status == 200
    mine = receipt(r)
    assert await asyncio.wait_for(r.content.readexactly(len(FIRST)), WAIT) == FIRST
    r.close()  # the client hangs up mid-body
    rig.gate.set()
    row = await _row(client, mine["callId"], CLIENT_GONE)
    assert (row["status"], row["amount"], row["fee"]) == ("paid", str(PRICE), mine["fee"])
    note = await _note(database_url, mine["paymentId"])
    assert (note["complete"], note["outcome"]) == (False, CLIENT_GONE)
    assert len(FIRST) <= note["bytes"] < len(FIRST) + 200 * 1024
    r = await client.get("/v1/calls")
    assert [c["id"] for c in (await r.json())["calls"]] == [mine["callId"]]  # one row, one fee


async def test_a_10_mb_body_streams_byte_exact_without_being_held_whole(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/big", proxy_max_bytes=BIG + PIECE)
    r = await _call(client, res, wallet)
    assert r.status == 200
    digest = hashlib.sha256()
    chunks = 0
    async for chunk in r.content.iter_any():
        digest.update(chunk)
        chunks += 1
        rig.received += len(chunk)
        rig.progress.set()
    expected = hashlib.sha256(b"".join(bytes([i % 251]) * PIECE for i in range(BIG // PIECE)))
    assert rig.received == BIG
    assert digest.hexdigest() == expected.hexdigest()
    assert chunks > 1
    # the upstream could only finish because the client kept reading: never more than WINDOW in flight
    assert rig.finished.is_set()
    assert rig.ahead <= WINDOW + PIECE
    note = await _note(database_url, receipt(r)["paymentId"])
    assert (note["bytes"], note["complete"]) == (BIG, True)
    assert "body" not in note  # too large to keep for replays


async def test_an_upstream_stalling_past_the_timeout_is_cut_and_recorded(
    wallet_service: Any, devchain: DevChain, rig: Rig, database_url: str
) -> None:
    client, res, wallet = await _setup(wallet_service, devchain, rig, "/drip", proxy_timeout=2.0)
    r = await _call(client, res, wallet)
    assert r.status == 200
    mine = receipt(r)
    assert await asyncio.wait_for(r.content.readexactly(len(FIRST)), WAIT) == FIRST
    with pytest.raises(aiohttp.ClientPayloadError):  # the gate stays shut: the deadline cuts the stream
        await asyncio.wait_for(r.read(), WAIT)
    assert not rig.finished.is_set()
    row = await _row(client, mine["callId"], "upstream_timeout")
    assert (row["status"], row["amount"]) == ("paid", str(PRICE))
    note = await _note(database_url, mine["paymentId"])
    assert (note["bytes"], note["complete"], note["outcome"]) == (len(FIRST), False, "upstream_timeout")
