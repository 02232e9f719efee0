"""Credits that expire, over real Postgres: burns take the soonest-expiring credits first, the expiry pass turns
exactly the unspent remainder of an expired grant into an `expiry` entry, once, even with two passes at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.metering.test_credits import _entry
from tests.metering.test_ingest import _tenant_key
from x402.service.app import create_app
from x402.service.appkeys import DB
from x402.service.metering.ledger import EXPIRY_ACTOR, expire_due, expire_lot
from x402.service.settings import Settings
from x402.service.storage.scope import tenant_scope
from x402.service.storage.walls import create_walled_pool


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def _balance(client: Any, customer: str, h: dict[str, str]) -> Any:
    r = await client.get(f"/v1/credits/{customer}", headers=h)
    assert r.status == 200, await r.text()
    return await r.json()


async def _until_due(database_url: str, count: int) -> None:
    """Wait until ``count`` lots are past their date (they were granted a second or two ahead)."""
    owner = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            if await owner.fetchval("SELECT count(*) FROM credit_lots WHERE expires_at <= now()") >= count:
                return
            await asyncio.sleep(0.1)
    finally:
        await owner.close()
    raise AssertionError("lots never came due")


async def _lots(database_url: str) -> dict[str, int]:
    owner = await asyncpg.connect(database_url)
    try:
        rows = await owner.fetch("SELECT txn, remaining FROM credit_lots")
    finally:
        await owner.close()
    return {str(r["txn"]): r["remaining"] for r in rows}


async def test_a_partly_burned_grant_expires_exactly_its_remainder(client: Any, database_url: str) -> None:
    _, h = await _tenant_key(client, "exp-rest", ["admin"])
    await _entry(client, "cus_1", {"kind": "grant", "credits": 100}, h)
    soon = _at(1.5)
    grant = await _entry(client, "cus_1", {"kind": "grant", "credits": 40, "expiresAt": soon}, h)
    assert grant["expiresAt"] is not None
    r = await client.post("/v1/credits/cus_1/burn", json={"credits": 15}, headers=h)
    assert r.status == 200, await r.text()
    bal = await _balance(client, "cus_1", h)
    assert bal["balance"] == 125
    assert bal["nextExpiry"]["credits"] == 25  # the burn took the expiring credits, not the permanent ones
    await _until_due(database_url, 1)
    pool = client.app[DB]
    assert await expire_due(pool) == 1
    assert await expire_due(pool) == 0  # expired once
    bal = await _balance(client, "cus_1", h)
    assert (bal["balance"], bal["nextExpiry"]) == (100, None)
    hist = await (await client.get("/v1/credits/cus_1/history", headers=h)).json()
    expiry = hist["entries"][0]
    assert (expiry["kind"], expiry["credits"], expiry["balance"]) == ("expiry", -25, 100)
    assert (expiry["reference"], expiry["counterAccount"]) == (f"grant:{grant['txn']}", "expired")
    owner = await asyncpg.connect(database_url)
    try:
        audited = await owner.fetch("SELECT actor FROM audit_log WHERE action = 'credits.expiry'")
        assert [a["actor"] for a in audited] == [EXPIRY_ACTOR]
        assert (
            await owner.fetchval(
                "SELECT count(*) FROM (SELECT txn FROM credit_entries GROUP BY txn "
                "HAVING sum(amount) <> 0 OR count(*) <> 2) AS t"
            )
            == 0
        )
    finally:
        await owner.close()


async def test_burns_take_the_soonest_expiring_credits_first(client: Any, database_url: str) -> None:
    _, h = await _tenant_key(client, "exp-order", ["admin"])
    await _entry(client, "cus_1", {"kind": "grant", "credits": 50}, h)
    later = await _entry(client, "cus_1", {"kind": "grant", "credits": 20, "expiresAt": _at(7200)}, h)
    sooner = await _entry(client, "cus_1", {"kind": "grant", "credits": 30, "expiresAt": _at(3600)}, h)
    assert (await _balance(client, "cus_1", h))["nextExpiry"]["credits"] == 30
    await client.post("/v1/credits/cus_1/burn", json={"credits": 40}, headers=h)
    assert await _lots(database_url) == {sooner["txn"]: 0, later["txn"]: 10}
    bal = await _balance(client, "cus_1", h)
    assert (bal["balance"], bal["nextExpiry"]["credits"]) == (60, 10)
    assert bal["nextExpiry"]["expiresAt"] == later["expiresAt"]
    # a charge given back returns its credits to the lots it took them from
    r = await client.post("/v1/credits/cus_1/charges", json={"key": "req-1", "credits": 8}, headers=h)
    assert r.status == 201, await r.text()
    assert await _lots(database_url) == {sooner["txn"]: 0, later["txn"]: 2}
    r = await client.post("/v1/credits/cus_1/charges/req-1/refund", headers=h)
    assert r.status == 201, await r.text()
    assert await _lots(database_url) == {sooner["txn"]: 0, later["txn"]: 10}
    # never-expiring credits go last
    await client.post("/v1/credits/cus_1/burn", json={"credits": 15}, headers=h)
    assert await _lots(database_url) == {sooner["txn"]: 0, later["txn"]: 0}
    bal = await _balance(client, "cus_1", h)
    assert (bal["balance"], bal["nextExpiry"]) == (45, None)


async def test_two_concurrent_passes_and_burns_expire_each_lot_once(client: Any, database_url: str) -> None:
    _, h = await _tenant_key(client, "exp-twice", ["admin"])
    customers = [f"cus_{i}" for i in range(12)]
    for c in customers:
        await _entry(client, c, {"kind": "grant", "credits": 10}, h)
        await _entry(client, c, {"kind": "grant", "credits": 6, "expiresAt": _at(1.5)}, h)
    await _until_due(database_url, len(customers))
    other = await create_walled_pool(database_url, min_size=1, max_size=2)  # a second process's pool

    async def burns(c: str) -> int:
        taken = 0
        for _ in range(3):
            r = await client.post(f"/v1/credits/{c}/burn", json={"credits": 2}, headers=h)
            taken += 2 if r.status == 200 else 0
        return taken

    try:
        results = await asyncio.gather(expire_due(client.app[DB]), expire_due(other), *(burns(c) for c in customers))
    finally:
        await other.close()
    assert results[0] + results[1] <= len(customers)
    burned = dict(zip(customers, results[2:], strict=True))
    owner = await asyncpg.connect(database_url)
    try:
        for c in customers:
            expired = await owner.fetch(
                "SELECT amount FROM credit_entries WHERE kind = 'expiry' AND account = 'customer:' || $1", c
            )
            assert len(expired) <= 1  # once per lot
            took = await owner.fetchval(
                """SELECT coalesce(sum(t.credits), 0) FROM credit_lot_takes t
                   JOIN credit_entries e ON e.txn = t.txn AND e.account = 'customer:' || $1 WHERE e.kind = 'burn'""",
                c,
            )
            gone = -sum(e["amount"] for e in expired)
            assert took + gone == 6  # the lot's credits: each burned or expired, exactly once
            balance = await owner.fetchval("SELECT balance FROM credit_accounts WHERE customer = $1", c)
            assert balance == 16 - burned[c] - gone
            assert balance == await owner.fetchval(
                "SELECT sum(amount) FROM credit_entries WHERE account = 'customer:' || $1", c
            )
        assert await owner.fetchval("SELECT count(*) FROM credit_lots WHERE remaining > 0") == 0
        # every lot expired by one of the two passes, the rest spent by burns first
        expiries = await owner.fetchval("SELECT count(*) FROM credit_entries WHERE kind = 'expiry' AND amount < 0")
        assert results[0] + results[1] == expiries
    finally:
        await owner.close()


async def test_a_second_tenant_cannot_see_or_expire_anothers_credits(client: Any, database_url: str) -> None:
    tenant_a, ha = await _tenant_key(client, "exp-a", ["admin"])
    tenant_b, hb = await _tenant_key(client, "exp-b", ["admin"])
    grant = await _entry(client, "cus_a", {"kind": "grant", "credits": 9, "expiresAt": _at(1.5)}, ha)
    assert (await client.get("/v1/credits/cus_a", headers=hb)).status == 404
    r = await client.post(
        "/v1/credits/cus_a/entries",
        json={"kind": "expiry", "credits": 9, "reference": f"grant:{grant['txn']}"},
        headers=hb,
    )
    assert (r.status, (await r.json())["code"]) == (422, "reserved_reference")
    r = await client.post("/v1/credits/cus_a/entries", json={"kind": "expiry", "credits": 9}, headers=hb)
    assert (r.status, (await r.json())["code"]) == (409, "insufficient_credits")  # B's own empty account
    await _until_due(database_url, 1)
    with tenant_scope(tenant_b):  # B's scope: the walls hide A's account and lot
        async with client.app[DB].acquire() as conn:
            assert await expire_lot(conn, uuid.UUID(tenant_a), "cus_a", uuid.UUID(grant["txn"])) is None
    bal = await _balance(client, "cus_a", ha)
    assert (bal["balance"], bal["nextExpiry"]["credits"]) == (9, 9)
    assert await expire_due(client.app[DB]) == 1
    assert (await _balance(client, "cus_a", ha))["balance"] == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"expiresAt": "tomorrow"}, "invalid_expires_at"),
        ({"expiresAt": "2030-01-01T00:00:00"}, "invalid_expires_at"),  # no offset
        ({"expiresAt": 1893456000}, "invalid_expires_at"),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, "expires_at_not_future"),
        ({"kind": "refund", "expiresAt": "2030-01-01T00:00:00Z"}, "invalid_expires_at"),
        ({"kind": "expiry", "reference": "grant:0d6c4a8e-1b3e-4d57-9a43-7d2d5f2c1a11"}, "reserved_reference"),
    ],
)
async def test_bad_expires_at_is_422_with_a_code(client: Any, body: dict[str, Any], code: str) -> None:
    _, h = await _tenant_key(client, "exp-bad", ["admin"])
    r = await client.post("/v1/credits/cus_1/entries", json={"kind": "grant", "credits": 5, **body}, headers=h)
    assert r.status == 422, await r.text()
    assert (await r.json())["code"] == code
    assert (await client.get("/v1/credits/cus_1", headers=h)).status == 404  # nothing landed


async def test_the_service_expires_credits_on_its_own(
    psettings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await aiohttp_client(create_app(psettings.with_(credit_expiry_interval=0.2)))
    _, h = await _tenant_key(client, "exp-loop", ["admin"])
    await _entry(client, "cus_1", {"kind": "grant", "credits": 7, "expiresAt": _at(1)}, h)
    for _ in range(100):
        if (await _balance(client, "cus_1", h))["balance"] == 0:
            break
        await asyncio.sleep(0.1)
    hist = await (await client.get("/v1/credits/cus_1/history", headers=h)).json()
    assert [(e["kind"], e["credits"]) for e in hist["entries"]] == [("expiry", -7), ("grant", 7)]
