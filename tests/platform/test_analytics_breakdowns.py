"""Analytics breakdowns over real Postgres with known records: exact figures, registry ids, cohorts, CSV."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from tests.platform.analytics_data import DATA, EURC, NET, P1, P2, P3, REPORT, SHOP, SHOP2, USDC, seed_records
from tests.platform.conftest import bearer, new_key, new_tenant
from x402.service.analytics import breakdowns as bd
from x402.service.analytics.routes import BREAKDOWNS
from x402.service.analytics.window import align
from x402.service.appkeys import PLATFORM
from x402.service.platform.writer import PaymentRecord
from x402.service.storage.scope import tenant_scope

WINDOW = {"from": "2026-03-28T00:00:00Z", "to": "2026-03-31T00:00:00Z"}
HEAD = {"from": "2026-03-28T00:00:00+00:00", "to": "2026-03-31T00:00:00+00:00"}
P4 = "0x" + "d" * 40


def _vol(asset: str, amount: str) -> list[dict[str, str]]:
    return [{"network": NET, "asset": asset, "amount": amount}]


async def _world(client: Any, database_url: str) -> tuple[uuid.UUID, dict[str, str], str]:
    tenant = await new_tenant(client, "shop")
    other = await new_tenant(client, "other")
    h = bearer((await new_key(client, tenant, ["verify"]))["key"])
    owner = await asyncpg.connect(database_url)
    try:  # the shop's registry listing of /report: its records get the listing's id at insert time
        listing = await owner.fetchval(
            "INSERT INTO resources (tenant_id, url, method, accepts) VALUES ($1, $2, 'GET', '[]') RETURNING id",
            uuid.UUID(tenant),
            REPORT,
        )
    finally:
        await owner.close()
    writer = client.app[PLATFORM].writer
    await seed_records(writer, uuid.UUID(tenant), pending=True)
    await seed_records(writer, uuid.UUID(other), scale=1000, pending=True)  # never in the shop's figures
    return uuid.UUID(tenant), h, str(listing)


async def _get(client: Any, name: str, h: dict[str, str], **query: str) -> Any:
    r = await client.get(f"/v1/analytics/{name}", params={**WINDOW, **query}, headers=h)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_resources_networks_and_payouts(client: Any, database_url: str) -> None:
    _, h, listing = await _world(client, database_url)
    assert await _get(client, "resources", h) == {
        **HEAD,
        "resources": [
            {"resource": REPORT, "method": "GET", "registryId": listing, "count": 4, "succeeded": 2, "failed": 1,
             "pending": 1, "volume": _vol(USDC, "3500000"), "usd": "3.5"},
            {"resource": "", "method": "", "registryId": None, "count": 1, "succeeded": 1, "failed": 0, "pending": 0,
             "volume": _vol(USDC, "100"), "usd": "0.0001"},
            {"resource": DATA, "method": "POST", "registryId": None, "count": 2, "succeeded": 1, "failed": 1,
             "pending": 0, "volume": _vol(EURC, "500000"), "usd": "0"},
        ],
    }  # fmt: skip
    assert await _get(client, "networks", h) == {
        **HEAD,
        "networks": [
            {"network": NET, "asset": USDC, "count": 6, "succeeded": 3, "failed": 2, "pending": 1,
             "amount": "3500100", "usd": "3.5001", "uniquePayers": 2},
            {"network": NET, "asset": EURC, "count": 1, "succeeded": 1, "failed": 0, "pending": 0,
             "amount": "500000", "usd": "0", "uniquePayers": 1},
        ],
    }  # fmt: skip
    assert await _get(client, "payouts", h) == {
        **HEAD,
        "payouts": [
            {"payTo": SHOP, "network": NET, "asset": USDC, "settled": "3500100", "settledCount": 3,
             "settledUsd": "3.5001", "pending": "4000", "pendingCount": 1, "fees": "0"},
            {"payTo": SHOP2, "network": NET, "asset": EURC, "settled": "500000", "settledCount": 1,
             "settledUsd": "0", "pending": "0", "pendingCount": 0, "fees": "0"},
        ],
    }  # fmt: skip
    # the window is whole UTC hours: 03-29 12:30 .. 13:10 widens to 12:00 .. 14:00 (r5 at 12:00, r7 at 13:00)
    narrow = await _get(client, "networks", h, **{"from": "2026-03-29T12:30:00Z", "to": "2026-03-29T13:10:00Z"})
    assert (narrow["from"], narrow["to"]) == ("2026-03-29T12:00:00+00:00", "2026-03-29T14:00:00+00:00")
    assert [(n["count"], n["succeeded"], n["failed"]) for n in narrow["networks"]] == [(2, 1, 1)]


async def test_payers_failures_and_risk(client: Any, database_url: str) -> None:
    _, h, _ = await _world(client, database_url)
    assert await _get(client, "payers", h) == {
        **HEAD,
        "uniquePayers": 3,
        "repeatPayers": 1,
        "repeatRate": 0.3333,
        "payers": [
            {"payer": P1, "count": 2, "succeeded": 2, "failed": 0, "volume": _vol(USDC, "3500000"), "usd": "3.5",
             "firstSeen": "2026-03-28T22:30:00+00:00", "lastSeen": "2026-03-28T23:30:00+00:00",
             "lifetimePayments": 2, "lifetimeValue": _vol(USDC, "3500000"), "lifetimeUsd": "3.5"},
            {"payer": P3, "count": 2, "succeeded": 1, "failed": 1, "volume": _vol(USDC, "100"), "usd": "0.0001",
             "firstSeen": "2026-03-29T13:00:00+00:00", "lastSeen": "2026-03-29T13:00:00+00:00",
             "lifetimePayments": 1, "lifetimeValue": _vol(USDC, "100"), "lifetimeUsd": "0.0001"},
            {"payer": P2, "count": 2, "succeeded": 1, "failed": 1, "volume": _vol(EURC, "500000"), "usd": "0",
             "firstSeen": "2026-03-29T21:30:00+00:00", "lastSeen": "2026-03-29T21:30:00+00:00",
             "lifetimePayments": 1, "lifetimeValue": _vol(EURC, "500000"), "lifetimeUsd": "0"},
        ],
    }  # fmt: skip
    top = await _get(client, "payers", h, limit="1")
    assert [p["payer"] for p in top["payers"]] == [P1]
    assert top["uniquePayers"] == 3  # the summary covers every payer, the list only the top ones
    assert await _get(client, "failures", h) == {
        **HEAD,
        "failed": 2,
        "failures": [
            {"reason": "insufficient_funds", "kind": "settle", "network": NET, "count": 1, "share": 0.5},
            {"reason": "risk_blocked", "kind": "verify", "network": NET, "count": 1, "share": 0.5},
        ],
    }
    assert await _get(client, "risk", h) == {
        **HEAD,
        "assessed": 3,
        "blocked": 1,
        "outcomes": [
            {"recommendation": "accept", "level": "low", "count": 2},
            {"recommendation": "block", "level": "critical", "count": 1},
        ],
        "flags": [
            {"code": "new_payer", "count": 1},
            {"code": "sanctions", "count": 1},
            {"code": "velocity", "count": 1},
        ],
    }


async def test_cohorts_by_first_payment_week(client: Any, database_url: str) -> None:
    tenant, h, _ = await _world(client, database_url)
    writer = client.app[PLATFORM].writer
    at = datetime(2026, 4, 1, 10, tzinfo=UTC)  # P1 comes back the next week; P4 pays for the first time
    for payer in (P1, P4):
        await writer.write(
            PaymentRecord(kind="settle", status="success", network=NET, asset=USDC, payer=payer, pay_to=SHOP,
                          amount=1_000_000, tenant_id=tenant, created_at=at, latency_ms=12)
        )  # fmt: skip
    body = await _get(client, "cohorts", h, **{"from": "2026-03-16T00:00:00Z", "to": "2026-04-06T00:00:00Z"})
    assert body == {
        "from": "2026-03-16T00:00:00+00:00",
        "to": "2026-04-06T00:00:00+00:00",
        "cohorts": [
            {
                "cohort": "2026-03-23T00:00:00+00:00",
                "size": 3,
                "retention": [{"week": 0, "payers": 3, "rate": 1.0}, {"week": 1, "payers": 1, "rate": 0.3333}],
            },
            {"cohort": "2026-03-30T00:00:00+00:00", "size": 1, "retention": [{"week": 0, "payers": 1, "rate": 1.0}]},
        ],
    }
    r = await client.get(
        "/v1/analytics/cohorts",
        params={"from": "2026-03-16T00:00:00Z", "to": "2026-04-06T00:00:00Z", "format": "csv"},
        headers=h,
    )
    assert await r.text() == (
        "cohort,size,week,payers,rate\r\n"
        "2026-03-23T00:00:00+00:00,3,0,3,1.0\r\n"
        "2026-03-23T00:00:00+00:00,3,1,1,0.3333\r\n"
        "2026-03-30T00:00:00+00:00,1,0,1,1.0\r\n"
    )


async def test_csv_of_every_breakdown_and_rollups_equal_raw(client: Any, database_url: str) -> None:
    tenant, h, listing = await _world(client, database_url)
    r = await client.get("/v1/analytics/resources", params={**WINDOW, "format": "csv"}, headers=h)
    assert r.content_type == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="resources.csv"'
    assert await r.text() == (
        "resource,method,registryId,count,succeeded,failed,pending,volume,usd\r\n"
        f"{REPORT},GET,{listing},4,2,1,1,{NET}:{USDC}=3500000,3.5\r\n"
        f",,,1,1,0,0,{NET}:{USDC}=100,0.0001\r\n"
        f"{DATA},POST,,2,1,1,0,{NET}:{EURC}=500000,0\r\n"
    )
    for name, (_, columns, _, _) in BREAKDOWNS.items():
        r = await client.get(f"/v1/analytics/{name}", params=WINDOW, headers={**h, "Accept": "text/csv"})
        assert r.status == 200, name
        lines = (await r.text()).split("\r\n")
        assert lines[0] == ",".join(columns), name
    # the same figures from the raw records, for every breakdown
    pool = client.app[PLATFORM].store.pool
    with tenant_scope(tenant):
        async with pool.acquire() as conn:
            for name, (func, _, unit, _) in BREAKDOWNS.items():
                window = await align(
                    conn, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 10, tzinfo=UTC), unit, "UTC"
                )
                assert await func(conn, tenant, window, 100) == await func(conn, tenant, window, 100, raw=True), name
    assert bd.payers is BREAKDOWNS["payers"][0]


async def test_bad_breakdown_queries(client: Any, database_url: str) -> None:
    _, h, _ = await _world(client, database_url)
    for bad, code in (
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "x"}, "invalid_query"),
        ({"from": "2026-03-31T00:00:00Z", "to": "2026-03-30T00:00:00Z"}, "invalid_range"),
        ({"format": "pdf"}, "invalid_query"),
    ):
        r = await client.get("/v1/analytics/payers", params=bad, headers=h)
        assert r.status == 400, bad
        assert (await r.json())["code"] == code
