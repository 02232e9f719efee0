"""Auto-pause on each trigger (audited, resumable) and signed webhooks with retries and dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.harness.paychain import PayChain
from tests.wallets.conftest import PRICE, Upstream, new_wallet, pay
from x402.webhooks import SIGNATURE_HEADER, verify


async def _audit_actions(database_url: str, wallet_id: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT action FROM audit_log WHERE object_id = $1 ORDER BY id", wallet_id)
    finally:
        await conn.close()
    return [r["action"] for r in rows]


async def test_pauses_on_velocity_spike(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain, database_url: str
) -> None:
    wallet = await new_wallet(service, chain, {"autoPause": {"velocityPerMinute": 2}})
    for _ in range(2):
        status, doc = await pay(service, wallet["id"], upstream.paid_url)
        assert status == 200, doc
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert (status, doc["code"]) == (423, "wallet_paused"), doc
    assert doc["reason"].startswith("velocity"), doc
    assert "wallet.pause" in await _audit_actions(database_url, wallet["id"])


async def test_pauses_at_cap_share(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain, database_url: str
) -> None:
    wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 4), "autoPause": {"capShare": 0.5}})
    for _ in range(2):
        status, doc = await pay(service, wallet["id"], upstream.paid_url)
        assert status == 200, doc
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert doc["code"] == "wallet_paused", doc
    assert doc["reason"].startswith("cap_share"), doc
    r = await service.post(f"/v1/wallets/{wallet['id']}/resume")
    assert r.status == 200
    status, doc = await pay(service, wallet["id"], upstream.paid_url)
    assert status == 200, doc


async def _receiver(fail: bool) -> tuple[TestServer, list[tuple[dict[str, str], bytes]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=500 if fail else 204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, got


async def _wait(cond: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_webhooks_signed_delivered_and_dead_lettered(
    service: TestClient[Any, Any], upstream: Upstream, chain: PayChain, database_url: str
) -> None:
    good, got = await _receiver(fail=False)
    bad, failed = await _receiver(fail=True)
    try:
        r = await service.post("/v1/webhooks", json={"url": str(good.make_url("/hook"))})
        assert r.status == 201
        secret = (await r.json())["secret"].encode()
        r = await service.post("/v1/webhooks", json={"url": str(bad.make_url("/hook")), "events": ["payment.made"]})
        bad_id = (await r.json())["id"]
        r = await service.get("/v1/webhooks")
        assert "secret" not in await r.text()
        wallet = await new_wallet(service, chain, {"totalBudget": str(PRICE * 2)})
        for _ in range(2):
            status, doc = await pay(service, wallet["id"], upstream.paid_url)
            assert status == 200, doc

        def kinds() -> list[Any]:
            return [(json.loads(b)["type"], json.loads(b)["data"].get("percent")) for _, b in got]

        async def all_in() -> bool:
            return {("payment.made", None), ("wallet.low_budget", 100)} <= set(kinds())

        await _wait(all_in)
        assert sorted(p for k, p in kinds() if k == "wallet.low_budget") == [80, 90, 100]
        for headers, body in got:
            assert verify(secret, body, headers[SIGNATURE_HEADER]), headers
            assert not verify(b"wrong", body, headers[SIGNATURE_HEADER])
            assert json.loads(body)["data"]["walletId"] == wallet["id"]

        async def dead() -> bool:
            r = await service.get("/v1/webhooks/dead-letters")
            return len((await r.json())["deadLetters"]) == 2

        await _wait(dead)
        r = await service.get("/v1/webhooks/dead-letters")
        letters = (await r.json())["deadLetters"]
        assert {d["endpointId"] for d in letters} == {bad_id}
        assert all(d["attempts"] == 3 for d in letters)
        assert all(d["lastError"] == "HTTP 500" for d in letters)
        assert len(failed) == 6  # 3 tries for each of 2 payment.made events
        conn = await asyncpg.connect(database_url)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'dead'", uuid.UUID(bad_id)
            )
        finally:
            await conn.close()
        assert n == 2
    finally:
        await good.close()
        await bad.close()
