"""The credit ledger over real Postgres: double entry, append-only, audited, exact under 200 concurrent burns."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.metering.test_ingest import _tenant_key


async def _entry(client: Any, customer: str, body: dict[str, Any], h: dict[str, str], status: int = 201) -> Any:
    r = await client.post(f"/v1/credits/{customer}/entries", json=body, headers=h)
    assert r.status == status, await r.text()
    return await r.json()


async def test_two_hundred_concurrent_burns_against_a_balance_for_exactly_n(client: Any, database_url: str) -> None:
    _, h = await _tenant_key(client, "burns", ["admin"])
    n = 37
    await _entry(client, "cus_1", {"kind": "grant", "credits": n * 3}, h)

    async def burn(i: int) -> int:
        r = await client.post("/v1/credits/cus_1/burn", json={"credits": 3, "reference": f"b-{i}"}, headers=h)
        return int(r.status)

    statuses = await asyncio.gather(*(burn(i) for i in range(200)))
    assert statuses.count(200) == n
    assert statuses.count(409) == 200 - n
    bal = await (await client.get("/v1/credits/cus_1", headers=h)).json()
    assert bal["balance"] == 0
    owner = await asyncpg.connect(database_url)
    try:
        # double entry: every transaction's legs sum to zero, and the customer's legs sum to the balance
        assert (
            await owner.fetchval(
                "SELECT count(*) FROM (SELECT txn FROM credit_entries GROUP BY txn "
                "HAVING sum(amount) <> 0 OR count(*) <> 2) AS t"
            )
            == 0
        )
        assert await owner.fetchval("SELECT sum(amount) FROM credit_entries WHERE account = 'customer:cus_1'") == 0
        assert await owner.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'credits.%'") == n + 1
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await owner.execute("UPDATE credit_entries SET amount = 0")
    finally:
        await owner.close()


async def test_burn_rates_negative_plans_references_and_history(client: Any) -> None:
    _, h = await _tenant_key(client, "rates", ["admin"])
    rates = {"tokens": {"credits": 1, "per": 1000}}
    r = await client.put("/v1/plans/tok", json={"burnRates": rates}, headers=h)
    assert r.status == 200
    await client.put("/v1/customers/cus_1", json={"plan": "tok"}, headers=h)
    first = await _entry(client, "cus_1", {"kind": "grant", "credits": 10, "reference": "welcome"}, h)
    again = await _entry(client, "cus_1", {"kind": "grant", "credits": 10, "reference": "welcome"}, h, 200)
    assert again == first  # once per reference
    r = await client.post("/v1/credits/cus_1/burn", json={"meter": "tokens", "units": 2500}, headers=h)
    body = await r.json()
    assert (body["credits"], body["balance"], body["units"]) == (-3, 7, 2500)  # 1 credit per 1,000, rounded up
    r = await client.post("/v1/credits/cus_1/burn", json={"credits": 8}, headers=h)
    assert r.status == 409
    assert (await r.json())["code"] == "insufficient_credits"
    await _entry(client, "cus_1", {"kind": "expiry", "credits": 2}, h)
    await _entry(client, "cus_1", {"kind": "refund", "credits": 1}, h)
    # a plan that allows it may go below zero
    await client.put("/v1/plans/tok", json={"burnRates": rates, "allowNegative": True}, headers=h)
    r = await client.post("/v1/credits/cus_1/burn", json={"credits": 8}, headers=h)
    assert (await r.json())["balance"] == -4
    hist = await (await client.get("/v1/credits/cus_1/history?limit=2", headers=h)).json()
    assert [e["kind"] for e in hist["entries"]] == ["burn", "refund"]
    rest = await (await client.get(f"/v1/credits/cus_1/history?cursor={hist['nextCursor']}", headers=h)).json()
    assert [e["kind"] for e in rest["entries"]] == ["expiry", "burn", "grant"]
    assert rest["nextCursor"] is None


async def test_second_tenant_sees_no_credit_account(client: Any) -> None:
    _, ha = await _tenant_key(client, "cred-a", ["admin"])
    _, hb = await _tenant_key(client, "cred-b", ["admin"])
    await _entry(client, "cus_a", {"kind": "grant", "credits": 5}, ha)
    for path in ("/v1/credits/cus_a", "/v1/credits/cus_a/history"):
        assert (await client.get(path, headers=hb)).status == 404
    r = await client.post("/v1/credits/cus_a/burn", json={"credits": 1}, headers=hb)
    assert r.status == 409  # B's own (empty) account, never A's balance
    assert (await (await client.get("/v1/credits/cus_a", headers=ha)).json())["balance"] == 5
