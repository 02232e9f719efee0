"""POST /v1/call and /v1/proxy/...: pays exactly the listed price through the wallet payer, refuses before signing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient

from chains.evm.devchain import DevChain
from tests.harness.evm import token_balance
from tests.harness.paychain import EvmChain
from tests.proxy.conftest import PRICE, Upstream, listing, receipt
from tests.wallets.conftest import new_wallet
from x402.wire.codec import PAYMENT_RESPONSE

FEE_BPS = 250


async def _payments(client: TestClient[Any, Any], wallet_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/wallets/{wallet_id}/payments")
    assert r.status == 200
    rows: list[dict[str, Any]] = (await r.json())["payments"]
    return rows


async def test_call_pays_exactly_the_listed_price_and_records_the_fee(
    wallet_service: Any, upstream: Upstream, devchain: DevChain
) -> None:
    client = await wallet_service(platform_fee_bps=FEE_BPS)
    res = await listing(client, devchain, upstream.paid_url, upstream.pay_to)
    wallet = await new_wallet(client, EvmChain(devchain), {"totalBudget": str(PRICE * 5)})
    before = await token_balance(devchain, upstream.pay_to)
    r = await client.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]})
    assert r.status == 200, await r.text()
    assert (await r.json())["paid"] is True  # the upstream's own body, passed through
    assert r.headers[PAYMENT_RESPONSE]  # the upstream's receipt passed through
    mine = receipt(r)
    assert mine["paid"] is True
    assert mine["amount"] == str(PRICE)
    assert mine["feeBps"] == FEE_BPS
    assert mine["fee"] == str(PRICE * FEE_BPS // 10_000)
    assert mine["transaction"].startswith("0x")
    assert await token_balance(devchain, upstream.pay_to) == before + PRICE
    [row] = await _payments(client, wallet["id"])  # the wallet ledger: one committed payment, the same path as pay
    assert row["status"] == "committed"
    assert Decimal(row["amount"]) == PRICE  # (the ledger view prints numerics as Decimal text, e.g. 1E+4)
    # the pass-through form, by URL of the listing this time through POST /v1/call's sibling
    r = await client.get(f"/v1/proxy/{res['id']}/", headers={"X402-Wallet": wallet["id"]})
    assert r.status == 200, await r.text()
    assert receipt(r)["amount"] == str(PRICE)
    assert await token_balance(devchain, upstream.pay_to) == before + 2 * PRICE
    r = await client.post("/v1/call", json={"resource": upstream.paid_url, "wallet": wallet["id"]})
    assert r.status == 200, await r.text()
    r = await client.get("/v1/calls")
    found = (await r.json())["calls"]
    assert [c["status"] for c in found] == ["paid", "paid", "paid"]
    assert {c["fee"] for c in found} == {str(PRICE * FEE_BPS // 10_000)}
    r = await client.get("/v1/calls/summary")
    [summary] = (await r.json())["resources"]
    assert summary == {
        "resourceId": res["id"],
        "calls": 3,
        "paid": 3,
        "amount": str(3 * PRICE),
        "fees": str(3 * (PRICE * FEE_BPS // 10_000)),
        "avgLatencyMs": summary["avgLatencyMs"],
    }
    r = await client.get(f"/v1/resources/{res['id']}/usage")
    assert r.status == 200, await r.text()
    usage = await r.json()
    assert usage["revenue"] == str(3 * PRICE)
    assert usage["paid"] == 3
    assert usage["trust"]["score"] >= 0


async def test_live_price_above_the_listing_is_refused_before_signing(
    service: TestClient[Any, Any], upstream: Upstream, devchain: DevChain
) -> None:
    res = await listing(service, devchain, upstream.paid_url, upstream.pay_to, amount=PRICE - 1)
    wallet = await new_wallet(service, EvmChain(devchain), {"totalBudget": str(PRICE * 5)})
    before = await token_balance(devchain, upstream.pay_to)
    r = await service.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]})
    assert r.status == 409, await r.text()
    doc = await r.json()
    assert doc["code"] == "price_above_listing"
    assert doc["listed"] == str(PRICE - 1)
    assert await _payments(service, wallet["id"]) == []  # no hold, nothing signed
    assert await token_balance(devchain, upstream.pay_to) == before
    r = await service.get("/v1/calls")
    [row] = (await r.json())["calls"]
    assert (row["status"], row["code"], row["fee"]) == ("refused", "price_above_listing", "0")


async def test_max_amount_below_the_price_is_refused(
    service: TestClient[Any, Any], upstream: Upstream, devchain: DevChain
) -> None:
    res = await listing(service, devchain, upstream.paid_url, upstream.pay_to)
    wallet = await new_wallet(service, EvmChain(devchain))
    r = await service.post(
        "/v1/call", json={"resource": res["id"], "wallet": wallet["id"], "maxAmount": str(PRICE - 1)}
    )
    assert r.status == 409, await r.text()
    assert (await r.json())["code"] == "over_max_amount"
    assert await _payments(service, wallet["id"]) == []
    r = await service.get(f"/v1/proxy/{res['id']}/", headers={"X402-Wallet": wallet["id"], "X402-Max-Amount": "1"})
    assert r.status == 409
    assert (await r.json())["code"] == "over_max_amount"


async def test_upstream_failures_map_to_502_and_504_naming_the_upstream(
    wallet_service: Any, broken: str, devchain: DevChain, upstream: Upstream
) -> None:
    client = await wallet_service(proxy_timeout=1.0, proxy_max_bytes=4096)
    wallet = await new_wallet(client, EvmChain(devchain), fund=0)
    host = "127.0.0.1"
    cases = {"/boom": (502, "upstream_error"), "/slow": (504, "upstream_timeout"), "/big": (502, "upstream_too_large")}
    for path, (status, code) in cases.items():
        res = await listing(client, devchain, broken + path, upstream.pay_to)
        r = await client.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]})
        doc = await r.json()
        assert (r.status, doc["code"]) == (status, code), (path, doc)
        assert doc["upstream"] == host
    r = await client.get("/v1/calls")
    assert sorted(c["code"] for c in (await r.json())["calls"]) == sorted(c for _, c in cases.values())


async def test_ssrf_guard_refuses_private_targets(wallet_service: Any, upstream: Upstream, devchain: DevChain) -> None:
    from x402.service.appkeys import REGISTRY
    from x402.service.registry.models import draft_from_json
    from x402.service.storage.scope import system_scope

    client = await wallet_service(allow_private_outbound=False)
    wallet = await new_wallet(client, EvmChain(devchain), fund=0)
    # listed behind the API's back (the registry itself refuses private URLs too)
    draft = draft_from_json(
        {
            "url": upstream.paid_url,
            "accepts": __import__("tests.proxy.conftest").proxy.conftest.accepts(devchain, upstream.pay_to, PRICE),
        }
    )
    with system_scope("test: a listing the registry API would refuse"):
        res = await client.app[REGISTRY].create(draft, tenant_id=None)
    r = await client.post("/v1/call", json={"resource": str(res.id), "wallet": wallet["id"]})
    assert r.status == 400, await r.text()
    assert (await r.json())["code"] == "outbound_refused"
    assert await _payments(client, wallet["id"]) == []


async def test_credentials_and_hop_by_hop_headers_are_not_forwarded(
    wallet_service: Any, devchain: DevChain, upstream: Upstream
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    seen: dict[str, str] = {}

    async def echo(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.json_response({"ok": True}, headers={"Set-Cookie": "s=1", "X-Kept": "yes"})

    app = web.Application()
    app.router.add_get("/echo", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        client = await wallet_service()
        wallet = await new_wallet(client, EvmChain(devchain), fund=0)
        res = await listing(client, devchain, str(server.make_url("/echo")), upstream.pay_to)
        r = await client.get(
            f"/v1/proxy/{res['id']}/",
            headers={
                "X402-Wallet": wallet["id"],
                "Cookie": "secret=1",
                "Proxy-Authorization": "Basic eDp5",
                "X-Custom": "v",
            },
        )
        assert r.status == 200, await r.text()
        assert "Set-Cookie" not in r.headers
        assert r.headers["X-Kept"] == "yes"
        assert receipt(r)["paid"] is False
    finally:
        await server.close()
    lowered = {k.lower() for k in seen}
    assert "x-custom" in lowered
    assert not lowered & {"authorization", "cookie", "proxy-authorization", "x402-wallet"}
