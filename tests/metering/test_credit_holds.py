"""Credit charges are holds until the answer goes out, over real Postgres: a service killed with SIGKILL while a
credit-charged handler runs leaves its charge held, and the restarted service's hold pass refunds it once, audited;
an answered request's charge is captured and never refunded by the pass; two concurrent passes (and captures racing
a pass) refund each charge at most once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.harness.procs import ROOT, wait_http, x402_serve
from tests.harness.services import free_port
from tests.metering import held_service
from tests.platform.conftest import ADMIN, bearer, new_key, new_tenant
from x402.paywall import CreditConfig, CreditPrice, PaidRoute, Paywall, header_customer
from x402.paywall.credits_remote import RemoteCredits
from x402.service.app import create_app
from x402.service.appkeys import DB
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.metering import ledger
from x402.service.metering.paywall import AppCredits
from x402.service.settings import Settings
from x402.service.storage.scope import tenant_scope


async def lookup(key: str) -> str | None:
    return key.removeprefix("ck_") if key.startswith("ck_") else None


async def _rows(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _balance(url: str, customer: str) -> int:
    rows = await _rows(url, "SELECT balance FROM credit_accounts WHERE customer = $1", customer)
    return int(rows[0]["balance"])


async def _kinds(url: str, customer: str) -> list[str]:
    rows = await _rows(
        url,
        "SELECT kind FROM credit_entries WHERE customer = $1 AND account = 'customer:' || $1 ORDER BY seq",
        customer,
    )
    return [r["kind"] for r in rows]


@contextlib.asynccontextmanager
async def _held_service(env: dict[str, str], port: int) -> Any:
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    full.update(env, X402_PORT=str(port), X402_LOG_LEVEL="warning")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        held_service.__name__,
        cwd=ROOT,
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc)
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.mark.slow
async def test_a_charge_held_by_a_killed_service_is_refunded_once_after_restart(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "X402_REQUIRE_API_KEYS": "0", "X402_CREDIT_HOLD_INTERVAL": "0"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with _held_service(env, port) as proc, aiohttp.ClientSession() as http:
        async with http.post(f"{base}/v1/credits/alice/entries", json={"kind": "grant", "credits": 12}) as r:
            assert r.status == 201, await r.text()
        headers = {"X-Customer-Key": "ck_alice", "Idempotency-Key": "killed-1"}
        request = asyncio.ensure_future(http.get(f"{base}/slow", headers=headers))
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        while not line.startswith(b"handler running"):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.split()[-1] == b"killed-1"
        # the handler runs: the burn is taken and held
        assert await _balance(database_url, "alice") == 12 - held_service.PRICE
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        with pytest.raises(aiohttp.ClientError):
            await request
    (held,) = await _rows(database_url, "SELECT * FROM credit_charges WHERE customer = 'alice'")
    assert (held["state"], held["credits"], held["settled_at"]) == ("held", held_service.PRICE, None)
    assert await _kinds(database_url, "alice") == ["grant", "burn"]

    # the service restarts (two worker processes, each running the hold pass) with a short hold timeout
    restart = {
        "DATABASE_URL": database_url,
        "X402_REQUIRE_API_KEYS": "0",
        "X402_WORKERS": "2",
        "X402_CREDIT_HOLD_INTERVAL": "0.2",
        "X402_CREDIT_HOLD_TIMEOUT": "1",
    }
    async with x402_serve(env=restart, port=free_port()) as svc, aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 30
        while await _balance(database_url, "alice") != 12:
            assert time.monotonic() < deadline, "the held charge was not refunded"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # several more passes of both workers: nothing more happens
        async with http.get(f"{svc.base_url}/v1/credits/alice/charges/{held['key']}") as r:
            charge = await r.json()
        assert (charge["state"], charge["credits"]) == ("refunded", held_service.PRICE)
        assert charge["settledAt"] is not None
    assert await _balance(database_url, "alice") == 12
    assert await _kinds(database_url, "alice") == ["grant", "burn", "burn_refund"]
    refunds = await _rows(
        database_url,
        "SELECT * FROM credit_entries WHERE customer = 'alice' AND kind = 'burn_refund' ORDER BY account",
    )
    assert [(e["account"], e["amount"], e["actor"]) for e in refunds] == [
        ("consumed:burn", -held_service.PRICE, ledger.HOLD_ACTOR),
        ("customer:alice", held_service.PRICE, ledger.HOLD_ACTOR),
    ]
    (audited,) = await _rows(database_url, "SELECT * FROM audit_log WHERE action = 'credits.burn_refund'")
    assert (audited["actor"], audited["object_id"]) == (ledger.HOLD_ACTOR, "None:alice")


# --- in process: captured charges, concurrent passes --------------------------------------------------------------


async def _app(database_url: str, aiohttp_client: Any) -> tuple[TestClient[Any, Any], AppCredits, dict[str, str]]:
    settings = Settings(database_url=database_url, require_api_keys=True, admin_token=ADMIN, credit_hold_interval=0)
    app = create_app(settings)
    calls: dict[str, int] = {}

    async def ok(request: web.Request) -> web.Response:
        calls["ok"] = calls.get("ok", 0) + 1
        return web.json_response({"ok": True})

    async def fails(request: web.Request) -> web.Response:
        return web.json_response({"error": "broke"}, status=503)

    app.router.add_get("/ok", ok)
    app.router.add_get("/fails", fails)
    credits = AppCredits(app)
    only = PaidRoute((), credits=CreditPrice(credits=3, mode="credits"))
    Paywall(
        AppFacilitator(app),
        routes={("GET", "/ok"): only, ("GET", "/fails"): only},
        credits=CreditConfig(credits, header_customer(lookup)),
        register=False,
    ).setup(app)
    client = await aiohttp_client(app)
    tenant = await new_tenant(client, "holds")
    credits.tenant_id = uuid.UUID(tenant)
    admin = bearer((await new_key(client, tenant, ["admin"]))["key"])
    return client, credits, admin


async def test_an_answered_request_is_captured_and_never_refunded_by_the_pass(
    database_url: str, aiohttp_client: Any
) -> None:
    client, _credits, admin = await _app(database_url, aiohttp_client)
    grant = {"kind": "grant", "credits": 10}
    assert (await client.post("/v1/credits/alice/entries", json=grant, headers=admin)).status == 201
    r = await client.get("/ok", headers={"X-Customer-Key": "ck_alice", "Idempotency-Key": "one"})
    assert r.status == 200
    (charge,) = await _rows(database_url, "SELECT * FROM credit_charges WHERE customer = 'alice'")
    assert (charge["state"], charge["credits"]) == ("captured", 3)
    assert charge["settled_at"] is not None
    r = await client.get(f"/v1/credits/alice/charges/{charge['key']}", headers=admin)
    assert (r.status, (await r.json())["state"]) == (200, "captured")

    # a failed request is refunded as before, and its charge says so
    r = await client.get("/fails", headers={"X-Customer-Key": "ck_alice"})
    assert r.status == 503
    states = await _rows(database_url, "SELECT state FROM credit_charges WHERE customer = 'alice' ORDER BY created_at")
    assert [s["state"] for s in states] == ["captured", "refunded"]

    # the pass, even with a zero timeout, leaves answered and refunded charges alone
    assert await ledger.release_due(client.app[DB], 0) == 0
    assert await _kinds(database_url, "alice") == ["grant", "burn", "burn", "burn_refund"]
    r = await client.get("/v1/credits/alice", headers=admin)
    assert (await r.json())["balance"] == 7

    # a charge the paywall never answered (burned over the API, like a provider that died) is held: not due before
    # the timeout, refunded once after it; a capture that comes too late is told so (409 charge_refunded)
    r = await client.post("/v1/credits/alice/charges", json={"key": "lost-1", "credits": 4}, headers=admin)
    assert (r.status, (await r.json())["state"]) == (201, "held")
    assert await ledger.release_due(client.app[DB], 300) == 0
    assert await ledger.release_due(client.app[DB], 0) == 1
    assert await ledger.release_due(client.app[DB], 0) == 0
    r = await client.post("/v1/credits/alice/charges/lost-1/capture", headers=admin)
    assert (r.status, (await r.json())["code"]) == (409, "charge_refunded")
    assert (await (await client.get("/v1/credits/alice", headers=admin)).json())["balance"] == 7
    r = await client.post("/v1/credits/alice/charges/nope/capture", headers=admin)
    assert (r.status, (await r.json())["code"]) == (404, "charge_not_found")


async def test_a_retry_answered_on_a_held_charge_captures_it(database_url: str, aiohttp_client: Any) -> None:
    client, _credits, admin = await _app(database_url, aiohttp_client)
    assert (
        await client.post("/v1/credits/bob/entries", json={"kind": "grant", "credits": 10}, headers=admin)
    ).status == 201
    headers = {"X-Customer-Key": "ck_bob", "Idempotency-Key": "again"}
    assert (await client.get("/ok", headers=headers)).status == 200
    # the first answer's capture got lost (as if the process died right after the burn): held again
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE credit_charges SET state = 'held', settled_at = NULL WHERE customer = 'bob'")
    finally:
        await conn.close()
    r = await client.get("/ok", headers=headers)  # the client's retry: served on the standing burn, captured
    assert (r.status, r.headers["X402-Credits-Charged"]) == (200, "3")
    (charge,) = await _rows(database_url, "SELECT state FROM credit_charges WHERE customer = 'bob'")
    assert charge["state"] == "captured"
    assert await ledger.release_due(client.app[DB], 0) == 0
    assert await _kinds(database_url, "bob") == ["grant", "burn"]


async def test_the_remote_ledger_captures_over_http(database_url: str, aiohttp_client: Any) -> None:
    client, credits, admin = await _app(database_url, aiohttp_client)
    assert (
        await client.post("/v1/credits/carol/entries", json={"kind": "grant", "credits": 10}, headers=admin)
    ).status == 201
    assert credits.tenant_id is not None
    key = (await new_key(client, str(credits.tenant_id), ["verify"]))["key"]
    remote = RemoteCredits(str(client.make_url("")).rstrip("/"), key)
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/ok", ok)
    Paywall(
        AppFacilitator(client.app),
        routes={("GET", "/ok"): PaidRoute((), credits=CreditPrice(credits=2, mode="credits"))},
        credits=CreditConfig(remote, header_customer(lookup)),
        register=False,
    ).setup(app)
    provider = await aiohttp_client(app)
    try:
        r = await provider.get("/ok", headers={"X-Customer-Key": "ck_carol"})
        assert (r.status, r.headers["X402-Credits-Remaining"]) == (200, "8")
        (charge,) = await _rows(database_url, "SELECT * FROM credit_charges WHERE customer = 'carol'")
        assert charge["state"] == "captured"
        assert await remote.capture("carol", charge["key"]) == "captured"  # again: still captured
        assert await ledger.release_due(client.app[DB], 0) == 0
        # a charge the pass refunded first: capture says so
        await remote.charge("carol", "late-1", CreditPrice(credits=1, mode="credits"))
        assert await ledger.release_due(client.app[DB], 0) == 1
        assert await remote.capture("carol", "late-1") == "refunded"
    finally:
        await remote.close()
    assert await _balance(database_url, "carol") == 8


async def test_two_concurrent_passes_refund_each_held_charge_once(database_url: str, aiohttp_client: Any) -> None:
    client, credits, admin = await _app(database_url, aiohttp_client)
    tenant = credits.tenant_id
    n, price = 40, 2
    for customer in ("dan", "erin"):
        grant = {"kind": "grant", "credits": 1000}
        assert (await client.post(f"/v1/credits/{customer}/entries", json=grant, headers=admin)).status == 201
    pool = client.app[DB]
    with tenant_scope(tenant):
        async with pool.acquire() as conn:
            for i in range(n):
                for customer in ("dan", "erin"):
                    await ledger.charge(conn, tenant, customer, f"{customer}-k{i}", credits=price, actor="test")
    assert await _balance(database_url, "dan") == 1000 - n * price

    # dan: two passes at once; erin: captures racing two passes (newest first, so they meet the passes midway)
    async def capture_erin() -> list[str]:
        out = []
        for i in reversed(range(n)):
            with tenant_scope(tenant):
                async with pool.acquire() as conn:
                    out.append((await ledger.capture_charge(conn, tenant, "erin", f"erin-k{i}"))["state"])
        return out

    passes = await asyncio.gather(
        ledger.release_due(pool, 0, batch=7), ledger.release_due(pool, 0, batch=7), capture_erin()
    )
    released = passes[0] + passes[1]
    captured = [s for s in passes[2] if s == "captured"]
    erin_refunded = n - len(captured)
    assert released == n + erin_refunded
    assert await _balance(database_url, "dan") == 1000
    assert (await _kinds(database_url, "dan")).count("burn_refund") == n
    assert await _balance(database_url, "erin") == 1000 - len(captured) * price
    assert (await _kinds(database_url, "erin")).count("burn_refund") == erin_refunded
    states = await _rows(database_url, "SELECT customer, state, count(*) AS n FROM credit_charges GROUP BY 1, 2")
    got = {(r["customer"], r["state"]): r["n"] for r in states}
    assert got.get(("dan", "refunded")) == n
    assert got.get(("erin", "captured"), 0) == len(captured)
    assert got.get(("erin", "refunded"), 0) == erin_refunded
    assert not any(state == "held" for _, state in got)
    audited = await _rows(
        database_url,
        "SELECT count(*) AS n FROM audit_log WHERE action = 'credits.burn_refund' AND actor = $1",
        ledger.HOLD_ACTOR,
    )
    assert audited[0]["n"] == n + erin_refunded
    # and nothing is left for a third pass
    assert await ledger.release_due(pool, 0) == 0
