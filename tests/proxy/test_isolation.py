"""Routed calls between tenants: B's key cannot pay from A's wallet, see A's calls or the usage of A's listing;
an agent key pays from its bound wallet without naming it."""

from __future__ import annotations

from typing import Any

from chains.evm.devchain import DevChain
from tests.harness.evm import mint
from tests.harness.paychain import EvmChain
from tests.proxy.conftest import PRICE, Upstream, listing, receipt
from tests.wallets.conftest import ADMIN, TENANT_SCOPES, new_wallet, service_factory, tenant_key_of


async def test_a_second_tenant_cannot_use_or_see_the_first_tenants_calls(
    devchain: DevChain, database_url: str, aiohttp_client: Any, upstream: Upstream
) -> None:
    client = await service_factory(EvmChain(devchain), database_url, aiohttp_client, keys_on=True)()
    res = await listing(client, devchain, upstream.paid_url, upstream.pay_to)
    wallet = await new_wallet(client, EvmChain(devchain), {"totalBudget": str(PRICE * 3)})
    r = await client.post(f"/v1/wallets/{wallet['id']}/agent-keys", json={})
    assert r.status == 201, await r.text()
    agent = {"Authorization": f"Bearer {(await r.json())['key']}"}
    # the agent key pays from its one bound wallet without naming it
    r = await client.post("/v1/call", json={"resource": res["id"]}, headers=agent)
    assert r.status == 200, await r.text()
    assert receipt(r)["walletId"] == wallet["id"]
    r = await client.get("/v1/calls", headers=agent)
    [mine] = (await r.json())["calls"]
    b = {"Authorization": f"Bearer {await tenant_key_of(client)}"}
    # B may call A's listing (the catalogue is public) but never from A's wallet
    r = await client.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]}, headers=b)
    assert (r.status, (await r.json())["code"]) == (404, "wallet_not_found")
    r = await client.get(f"/v1/proxy/{res['id']}/", headers={**b, "X402-Wallet": wallet["id"]})
    assert (r.status, (await r.json())["code"]) == (404, "wallet_not_found")
    r = await client.post("/v1/call", json={"resource": res["id"]}, headers=b)
    assert (r.status, (await r.json())["code"]) == (400, "wallet_required")
    for path in ("/v1/calls", "/v1/calls/summary"):
        r = await client.get(path, headers=b)
        assert r.status == 200
        text = await r.text()
        for marker in (mine["id"], res["id"], wallet["id"]):
            assert marker not in text, (path, text)
    for path in (f"/v1/resources/{res['id']}/usage", f"/v1/wallets/{wallet['id']}/trust"):
        r = await client.get(path, headers=b)
        assert r.status == 404, (path, await r.text())
    # the owner sees the usage of its listing
    r = await client.get(f"/v1/resources/{res['id']}/usage")
    assert (await r.json())["revenue"] == str(PRICE)
    # B's own call to A's listing counts in A's usage (aggregates only, never B's identity)
    r = await client.post("/v1/wallets", json={"name": "b", "chains": ["evm"]}, headers=b)
    b_wallet = await r.json()
    await mint(devchain, b_wallet["addresses"]["evm"], PRICE)
    r = await client.post("/v1/call", json={"resource": res["id"], "wallet": b_wallet["id"]}, headers=b)
    assert r.status == 200, await r.text()
    r = await client.get(f"/v1/resources/{res['id']}/usage")
    usage = await r.json()
    assert (usage["revenue"], usage["callers"]) == (str(2 * PRICE), 2)
    assert b_wallet["id"] not in await r.text()


async def test_each_tenant_pays_its_own_platform_fee(
    devchain: DevChain, database_url: str, aiohttp_client: Any, upstream: Upstream
) -> None:
    make = service_factory(EvmChain(devchain), database_url, aiohttp_client, keys_on=False)
    keys_on = {"require_api_keys": True, "admin_token": ADMIN}
    setup = await make(**keys_on)
    op = {"Authorization": f"Bearer {ADMIN}"}
    tenants: dict[str, tuple[str, str]] = {}  # name -> (tenant id, key)
    for name in ("a", "b"):
        r = await setup.post("/v1/tenants", json={"name": f"fee-{name}"}, headers=op)
        tenant = (await r.json())["id"]
        r = await setup.post(f"/v1/tenants/{tenant}/keys", json={"scopes": TENANT_SCOPES}, headers=op)
        tenants[name] = (tenant, (await r.json())["key"])
    # X402_PLATFORM_FEE_BPS=100 for everyone, X402_PLATFORM_FEE_OVERRIDES={a: 250}
    fees = {"platform_fee_bps": 100, "platform_fee_overrides": {tenants["a"][0]: 250}}
    expected = {"a": 250, "b": 100}
    res: dict[str, Any] | None = None
    for name, (_tenant, key) in tenants.items():
        client = await make(**keys_on, **fees)
        client.session.headers["Authorization"] = f"Bearer {key}"
        if res is None:
            res = await listing(client, devchain, upstream.paid_url, upstream.pay_to)  # a's listing, both call it
        wallet = await new_wallet(client, EvmChain(devchain))
        r = await client.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]})
        assert r.status == 200, await r.text()
        bps = expected[name]
        assert (receipt(r)["feeBps"], receipt(r)["fee"]) == (bps, str(PRICE * bps // 10_000)), name
        r = await client.get("/v1/calls")
        [row] = (await r.json())["calls"]
        assert (row["status"], row["feeBps"], row["fee"]) == ("paid", bps, str(PRICE * bps // 10_000)), name
        r = await client.get("/v1/calls/summary")
        [summary] = (await r.json())["resources"]
        assert summary["fees"] == str(PRICE * bps // 10_000), name
