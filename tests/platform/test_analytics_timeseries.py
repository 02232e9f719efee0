"""Analytics time series over real Postgres: known records, exact figures, gaps, time zones (a DST day), CSV."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tests.platform.analytics_data import (
    EURC,
    NET,
    USDC,
    seed_records,
)
from tests.platform.conftest import bearer, new_key, new_tenant
from x402.service.analytics import timeseries as ts
from x402.service.analytics.folder import fold_all
from x402.service.analytics.window import align
from x402.service.appkeys import PLATFORM
from x402.service.storage.scope import system_scope, tenant_scope

EMPTY = {
    "count": 0,
    "succeeded": 0,
    "failed": 0,
    "uniquePayers": 0,
    "volume": [],
    "usd": "0",
    "verifyP50Ms": None,
    "verifyP95Ms": None,
    "settleP50Ms": None,
    "settleP95Ms": None,
}


async def _tenant(client: Any, name: str) -> tuple[str, dict[str, str]]:
    tenant = await new_tenant(client, name)
    return tenant, bearer((await new_key(client, tenant, ["verify"]))["key"])


async def _get(client: Any, headers: dict[str, str], **query: str) -> Any:
    r = await client.get("/v1/analytics/timeseries", params=query, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_daily_series_over_a_dst_change_in_berlin(client: Any) -> None:
    tenant, h = await _tenant(client, "shop")
    other, _ = await _tenant(client, "other-shop")
    await seed_records(client.app[PLATFORM].writer, uuid.UUID(tenant))
    await seed_records(client.app[PLATFORM].writer, uuid.UUID(other), scale=1000)  # must never show up
    body = await _get(
        client, h, interval="day", tz="Europe/Berlin", **{"from": "2026-03-27T00:00:00+01:00", "to": "2026-03-31"}
    )
    assert body["interval"] == "day"
    assert body["tz"] == "Europe/Berlin"
    assert body["from"] == "2026-03-27T00:00:00+01:00"
    # "2026-03-31" is midnight UTC = 02:00 in Berlin: the window widens to the end of that local day
    assert body["to"] == "2026-04-01T00:00:00+02:00"
    points = body["points"]
    assert [p["bucket"] for p in points] == [
        "2026-03-27T00:00:00+01:00",
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",  # 23 hours long: clocks jump from 02:00 to 03:00
        "2026-03-30T00:00:00+02:00",
        "2026-03-31T00:00:00+02:00",
    ]
    assert points[0] == {"bucket": points[0]["bucket"], **EMPTY}
    assert points[4] == {"bucket": points[4]["bucket"], **EMPTY}
    assert points[1] == {
        "bucket": "2026-03-28T00:00:00+01:00",
        "count": 1,
        "succeeded": 1,
        "failed": 0,
        "uniquePayers": 1,
        "volume": [{"network": NET, "asset": USDC, "amount": "1000000"}],
        "usd": "1",
        "verifyP50Ms": None,
        "verifyP95Ms": None,
        "settleP50Ms": 10.0,
        "settleP95Ms": 10.0,
    }
    assert points[2] == {
        "bucket": "2026-03-29T00:00:00+01:00",
        "count": 4,
        "succeeded": 3,
        "failed": 1,
        "uniquePayers": 3,
        "volume": [
            {"network": NET, "asset": USDC, "amount": "2500100"},
            {"network": NET, "asset": EURC, "amount": "500000"},
        ],
        "usd": "2.5001",  # EURC is not a dollar: atomic units only
        "verifyP50Ms": 7.0,
        "verifyP95Ms": 9.0,
        "settleP50Ms": 20.0,
        "settleP95Ms": 30.0,
    }
    assert points[3] == {
        "bucket": "2026-03-30T00:00:00+02:00",
        **EMPTY,
        "count": 1,
        "failed": 1,
        "settleP50Ms": 40.0,
        "settleP95Ms": 40.0,
    }


async def test_hourly_weekly_and_a_half_hour_zone(client: Any) -> None:
    tenant, h = await _tenant(client, "shop")
    await seed_records(client.app[PLATFORM].writer, uuid.UUID(tenant))
    hours = await _get(client, h, interval="hour", **{"from": "2026-03-29T10:00:00Z", "to": "2026-03-29T13:30:00Z"})
    assert hours["to"] == "2026-03-29T14:00:00+00:00"
    got = [
        (p["bucket"], p["count"], p["succeeded"], p["failed"], p["uniquePayers"], p["verifyP50Ms"])
        for p in hours["points"]
    ]
    assert got == [
        ("2026-03-29T10:00:00+00:00", 0, 0, 0, 0, None),
        ("2026-03-29T11:00:00+00:00", 0, 0, 0, 0, 7.0),  # a valid verify: latency, but its settle is the count
        ("2026-03-29T12:00:00+00:00", 1, 0, 1, 0, 5.0),
        ("2026-03-29T13:00:00+00:00", 1, 1, 0, 1, 9.0),
    ]
    weeks = await _get(client, h, interval="week", **{"from": "2026-03-20T00:00:00Z", "to": "2026-04-01T00:00:00Z"})
    got = [(p["bucket"], p["count"], p["succeeded"], p["failed"], p["uniquePayers"], p["usd"]) for p in weeks["points"]]
    assert got == [
        ("2026-03-16T00:00:00+00:00", 0, 0, 0, 0, "0"),
        ("2026-03-23T00:00:00+00:00", 6, 4, 2, 3, "3.5001"),
        ("2026-03-30T00:00:00+00:00", 0, 0, 0, 0, "0"),
    ]
    # +05:30: buckets do not sit on whole UTC hours, so the figures come from the raw records (still exact)
    india = await _get(
        client,
        h,
        interval="day",
        tz="Asia/Kolkata",
        **{"from": "2026-03-29T00:00:00+05:30", "to": "2026-03-30T00:00:00+05:30"},
    )
    (day,) = india["points"]
    assert day["bucket"] == "2026-03-29T00:00:00+05:30"
    assert (day["count"], day["succeeded"], day["failed"], day["uniquePayers"]) == (4, 3, 1, 2)
    assert day["volume"] == [{"network": NET, "asset": USDC, "amount": "3500100"}]
    assert day["usd"] == "3.5001"


async def _both(pool: Any, tid: uuid.UUID) -> list[tuple[Any, Any]]:
    start, end = datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)
    out = []
    with tenant_scope(tid):
        async with pool.acquire() as conn:
            for interval, tz in (("hour", "UTC"), ("day", "Europe/Berlin"), ("week", "America/New_York")):
                window = await align(conn, start, end, interval, tz)
                starts = await ts.buckets(conn, window)
                rolled = await ts.series(conn, tid, window, starts, raw=False)
                out.append((rolled, await ts.series(conn, tid, window, starts, raw=True)))
    return out


async def test_rollups_equal_the_raw_records_before_and_after_folding(client: Any) -> None:
    """Rollups + pending records give exactly what the raw records give, for every interval, whether the records
    are still pending, folded, or folded in two steps with new records in between."""
    tenant, _ = await _tenant(client, "shop")
    tid = uuid.UUID(tenant)
    pool = client.app[PLATFORM].store.pool
    await seed_records(client.app[PLATFORM].writer, tid)
    await fold_all(pool)
    await seed_records(client.app[PLATFORM].writer, tid, scale=3, shift_minutes=17)  # a second batch, same hours
    for rolled, raw in await _both(pool, tid):
        assert rolled == raw
        assert sum(p["count"] for p in rolled["points"]) == 12
    await fold_all(pool)  # (the service's own folder may have taken some already)
    with system_scope("test: nothing is left pending"):
        assert await pool.fetchval("SELECT count(*) FROM analytics_pending") == 0
        folded = await pool.fetchval("SELECT sum(total) FROM analytics_hourly WHERE tenant_id = $1", tid)
    assert folded == 12
    for rolled, raw in await _both(pool, tid):
        assert rolled == raw


async def test_csv_export_and_bad_queries(client: Any) -> None:
    tenant, h = await _tenant(client, "shop")
    await seed_records(client.app[PLATFORM].writer, uuid.UUID(tenant))
    q = {
        "interval": "day",
        "tz": "Europe/Berlin",
        "from": "2026-03-28T00:00:00+01:00",
        "to": "2026-03-30T00:00:00+02:00",
    }
    r = await client.get("/v1/analytics/timeseries", params={**q, "format": "csv"}, headers=h)
    assert r.status == 200
    assert r.content_type == "text/csv"
    assert await r.text() == (
        "bucket,count,succeeded,failed,uniquePayers,volume,usd,verifyP50Ms,verifyP95Ms,settleP50Ms,settleP95Ms\r\n"
        f"2026-03-28T00:00:00+01:00,1,1,0,1,{NET}:{USDC}=1000000,1,,,10.0,10.0\r\n"
        f"2026-03-29T00:00:00+01:00,4,3,1,3,{NET}:{USDC}=2500100 {NET}:{EURC}=500000,2.5001,7.0,9.0,20.0,30.0\r\n"
    )
    r2 = await client.get("/v1/analytics/timeseries", params=q, headers={**h, "Accept": "text/csv"})
    assert r2.content_type == "text/csv"
    assert await r2.text() == await r.text()
    for bad, code in (
        ({"interval": "month"}, "invalid_query"),
        ({"tz": "Mars/Olympus"}, "invalid_time_zone"),
        ({"from": "yesterday"}, "invalid_query"),
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "invalid_range"),
        ({"interval": "hour", "from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "range_too_large"),
        ({"format": "xml"}, "invalid_query"),
    ):
        r = await client.get("/v1/analytics/timeseries", params=bad, headers=h)
        assert r.status == 400, bad
        assert (await r.json())["code"] == code
    r = await client.get("/v1/analytics/timeseries")
    assert r.status == 401
