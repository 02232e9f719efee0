"""Payment records: facilitator outcomes recorded per tenant; list filters, cursor pagination, usage summary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant
from x402.service.appkeys import PLATFORM
from x402.service.platform.writer import PaymentRecord

BASE = "eip155:8453"
SOL = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _records(tenant: uuid.UUID) -> list[PaymentRecord]:
    out = []
    for i in range(25):
        ok = i % 5 != 0
        out.append(
            PaymentRecord(
                kind="settle",
                status="success" if ok else "failed",
                network=BASE if i < 20 else SOL,
                asset=USDC if i < 20 else "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
                payer=f"0xpayer{i % 4}",
                pay_to="0xshop" if i % 2 else "0xother",
                amount=1000 * (i + 1),
                tx=f"0xtx{i}",
                reason=None if ok else "insufficient_funds",
                tenant_id=tenant,
                created_at=T0 + timedelta(minutes=i),
            )
        )
    return out


async def _seed(client: Any, name: str) -> tuple[str, str, list[PaymentRecord]]:
    tenant = await new_tenant(client, name)
    key = (await new_key(client, tenant, ["verify"]))["key"]
    records = _records(uuid.UUID(tenant))
    writer = client.app[PLATFORM].writer
    for r in records:
        await writer.write(r)
    return tenant, key, records


async def test_list_filters_and_cursor(client: Any) -> None:
    _, key, records = await _seed(client, "shop")
    await _seed(client, "someone-else")
    h = bearer(key)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        q = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/v1/payments", params=q, headers=h)).json()
        seen += [p["id"] for p in page["data"]]
        pages += 1
        if not page["hasMore"]:
            assert "nextCursor" not in page
            break
        cursor = page["nextCursor"]
    assert pages == 4
    assert seen == [str(r.id) for r in sorted(records, key=lambda r: r.created_at, reverse=True)]

    async def ids(**params: str) -> set[str]:
        body = await (await client.get("/v1/payments", params={"limit": "500", **params}, headers=h)).json()
        return {p["id"] for p in body["data"]}

    def want(pred: Any) -> set[str]:
        return {str(r.id) for r in records if pred(r)}

    assert await ids(status="failed") == want(lambda r: r.status == "failed")
    assert await ids(network=SOL) == want(lambda r: r.network == SOL)
    assert await ids(payer="0xpayer1") == want(lambda r: r.payer == "0xpayer1")
    assert await ids(payTo="0xshop", status="success") == want(lambda r: r.pay_to == "0xshop" and r.status == "success")
    frm, to = (T0 + timedelta(minutes=5)).isoformat(), (T0 + timedelta(minutes=10)).isoformat()
    assert await ids(**{"from": frm, "to": to}) == want(lambda r: 5 <= r.created_at.minute < 10)

    one = await (await client.get(f"/v1/payments/{records[3].id}", headers=h)).json()
    assert one == {
        "id": str(records[3].id),
        "kind": "settle",
        "status": "success",
        "network": BASE,
        "asset": USDC,
        "payer": "0xpayer3",
        "payTo": "0xshop",
        "amount": "4000",
        "transaction": "0xtx3",
        "createdAt": records[3].created_at.isoformat(),
    }
    # a cursor of the documented shape is a position even when no row sits there: rows before it, or none
    far = f"{10**17 - 1}.{'f' * 32}"
    r = await client.get("/v1/payments", params={"cursor": far, "limit": "500"}, headers=h)
    assert r.status == 200
    assert len((await r.json())["data"]) == len(records)
    r = await client.get("/v1/payments", params={"cursor": f"0.{'0' * 32}"}, headers=h)
    assert r.status == 200
    assert (await r.json()) == {"data": [], "hasMore": False}
    for bad in ({"cursor": "nope!"}, {"cursor": f"1.{'A' * 32}"}, {"limit": "0"}, {"from": "yesterday"}):
        r = await client.get("/v1/payments", params=bad, headers=h)
        assert r.status == 400, bad
    assert (await client.get(f"/v1/payments/{uuid.uuid4()}", headers=h)).status == 404
    assert (await client.get("/v1/payments/not-a-uuid", headers=h)).status == 404


async def test_usage_summary(client: Any) -> None:
    _, key, records = await _seed(client, "shop")
    q = {"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
    usage = await (await client.get("/v1/usage", params=q, headers=bearer(key))).json()
    assert usage["counts"] == {"settle": {"success": 20, "failed": 5}}
    assert usage["total"] == 25
    ok = [r for r in records if r.status == "success"]
    by_net: dict[tuple[str, str], int] = {}
    for r in ok:
        by_net[(r.network, r.asset)] = by_net.get((r.network, r.asset), 0) + r.amount
    assert {(v["network"], v["asset"]): int(v["amount"]) for v in usage["volume"]} == by_net
    assert usage["uniquePayers"] == 4
    assert usage["repeatPayers"] == 4
    assert usage["repeatRate"] == 1.0
    assert usage["quota"]["tier"] == "free"


async def test_facilitator_outcomes_are_recorded(client: Any) -> None:
    tenant = await new_tenant(client, "shop")
    key = (await new_key(client, tenant))["key"]
    for path in ("/verify", "/settle"):
        assert (await client.post(path, json=VERIFY_BODY, headers=bearer(key))).status == 200
    await client.app[PLATFORM].writer.close()
    listed = await (await client.get("/v1/payments", headers=bearer(key))).json()
    got = {(p["kind"], p["status"], p["reason"], p["network"], p["amount"]) for p in listed["data"]}
    assert got == {
        ("verify", "invalid", "invalid_network", BASE, "10000"),
        ("settle", "failed", "invalid_network", BASE, "10000"),
    }
