"""``POST /v1/events`` over real Postgres: idempotent per tenant, per-event errors, the late window, scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.platform.conftest import bearer, new_key, new_tenant


def _event(i: int, **over: Any) -> dict[str, Any]:
    return {"id": f"ev-{i}", "customer": "cus_1", "meter": "tokens", "value": 10, **over}


async def _tenant_key(client: Any, name: str, scopes: list[str] | None = None) -> tuple[str, dict[str, str]]:
    tenant = await new_tenant(client, name)
    return tenant, bearer((await new_key(client, tenant, scopes or ["verify"]))["key"])


async def _count(database_url: str, tenant: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(database_url)  # the owning role: what landed, past the walls
    try:
        rows = await conn.fetch("SELECT id, value FROM usage_events WHERE tenant_id = $1::uuid ORDER BY id", tenant)
    finally:
        await conn.close()
    return [(r["id"], r["value"]) for r in rows]


async def test_batch_lands_once_and_a_resend_is_reported_as_duplicates(client: Any, database_url: str) -> None:
    tenant, h = await _tenant_key(client, "usage-a")
    batch = {"events": [_event(i) for i in range(5)]}
    r = await client.post("/v1/events", json=batch, headers=h)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body == {"accepted": [f"ev-{i}" for i in range(5)], "duplicates": [], "errors": []}
    # the same batch again (a client retry), plus one new event and one repeated inside the batch
    batch["events"] += [_event(5), _event(5, value=99)]
    r = await client.post("/v1/events", json=batch, headers=h)
    body = await r.json()
    assert body["accepted"] == ["ev-5"]
    assert sorted(body["duplicates"]) == sorted([f"ev-{i}" for i in range(5)] + ["ev-5"])
    rows = await _count(database_url, tenant)
    assert len(rows) == 6
    assert dict(rows)["ev-5"] == 10


async def test_bad_events_get_their_own_errors_while_good_ones_land(client: Any, database_url: str) -> None:
    tenant, h = await _tenant_key(client, "usage-bad")
    now = datetime.now(UTC)
    events = [
        _event(1),
        _event(2, value=-1),
        _event(3, meter="Bad Meter"),
        "not an object",
        _event(4, timestamp=(now - timedelta(days=30)).isoformat()),  # older than the 7-day window
        _event(5, timestamp=(now + timedelta(hours=1)).isoformat()),
        _event(6, timestamp=(now - timedelta(days=2)).isoformat()),  # late, inside the window
        _event(7, extra=1),
        {"customer": "c", "meter": "m"},
        _event(8, properties=[1]),
    ]
    r = await client.post("/v1/events", json={"events": events}, headers=h)
    assert r.status == 200
    body = await r.json()
    assert body["accepted"] == ["ev-1", "ev-6"]
    codes = {e["index"]: e["code"] for e in body["errors"]}
    assert codes == {
        1: "invalid_value",
        2: "invalid_meter",
        3: "invalid_event",
        4: "event_too_late",
        5: "event_in_future",
        7: "invalid_event",
        8: "invalid_id",
        9: "invalid_properties",
    }
    assert [e["id"] for e in body["errors"]][:2] == ["ev-2", "ev-3"]
    assert [i for i, _ in await _count(database_url, tenant)] == ["ev-1", "ev-6"]


async def test_late_window_is_a_setting(psettings: Any, aiohttp_client: Any) -> None:
    from x402.service.app import create_app

    client = await aiohttp_client(create_app(psettings.with_(usage_late_window=60)))
    _, h = await _tenant_key(client, "usage-window")
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    r = await client.post("/v1/events", json={"events": [_event(1, timestamp=old)]}, headers=h)
    assert (await r.json())["errors"][0]["code"] == "event_too_late"


async def test_ids_are_per_tenant_and_a_second_tenant_sees_nothing(client: Any, database_url: str) -> None:
    a, ha = await _tenant_key(client, "usage-t1")
    b, hb = await _tenant_key(client, "usage-t2", ["admin"])
    r = await client.post("/v1/events", json={"events": [_event(1)]}, headers=ha)
    assert (await r.json())["accepted"] == ["ev-1"]
    # the same id from another tenant is that tenant's own event, not a duplicate of A's
    r = await client.post("/v1/events", json={"events": [_event(1, value=3)]}, headers=hb)
    assert (await r.json())["accepted"] == ["ev-1"]
    assert await _count(database_url, a) == [("ev-1", 10)]
    assert await _count(database_url, b) == [("ev-1", 3)]


async def test_batch_limits_scopes_and_keys(client: Any) -> None:
    _, h = await _tenant_key(client, "usage-limits")
    r = await client.post("/v1/events", json={"events": [_event(i) for i in range(1001)]}, headers=h)
    assert r.status == 422
    assert (await r.json())["code"] == "invalid_batch"
    r = await client.post("/v1/events", json={"events": [], "x": 1}, headers=h)
    assert r.status == 422
    r = await client.post("/v1/events", json={"events": [_event(1)]})
    assert r.status == 401
    _, hw = await _tenant_key(client, "usage-wallets", ["wallets"])
    r = await client.post("/v1/events", json={"events": [_event(1)]}, headers=hw)
    assert r.status == 403
    assert (await r.json())["code"] == "insufficient_scope"
    r = await client.post("/v1/events", json={"events": [_event(i) for i in range(1000)]}, headers=h)
    assert r.status == 200
    assert len((await r.json())["accepted"]) == 1000
