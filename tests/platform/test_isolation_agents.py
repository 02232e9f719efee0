"""Isolation of agent keys (one wallet) and of verify-tx records, with API keys on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.platform.conftest import ADMIN, bearer, new_key, new_tenant
from tests.platform.test_isolation import BODIES, MASTER, OBJECT_CASES, OBJECT_ROUTES, World, build_world
from x402.service.app import create_app
from x402.service.settings import Settings

#: Wallet routes an agent key may use on its own wallet (pay and read); every other wallet route manages.
AGENT_MAY = {
    ("GET", "/v1/wallets/{id}"),
    ("GET", "/v1/wallets/{id}/budget"),
    ("GET", "/v1/wallets/{id}/balance"),
    ("GET", "/v1/wallets/{id}/payments"),
    ("GET", "/v1/wallets/{id}/approvals"),
    ("POST", "/v1/wallets/{id}/pay"),
}
WALLET_CASES = [(m, p) for m, p in OBJECT_CASES if p.startswith("/v1/wallets/{id}")]
MANAGE_CASES = [c for c in WALLET_CASES if c not in AGENT_MAY]
#: Tenant-wide reads beyond the agent's one wallet.
TENANT_READS = ["/v1/payments", "/v1/usage", "/v1/webhooks", "/v1/webhooks/dead-letters", "/v1/risk/rules"]


@pytest.fixture
async def agent_world(psettings: Settings, aiohttp_client: Any, database_url: str) -> tuple[World, str, str]:
    """A's world, a second wallet of A, and an agent key bound to that second wallet."""
    app = create_app(psettings.with_(master_key=MASTER))
    client = await aiohttp_client(app)
    w = await build_world(client, app, database_url)
    h = bearer(w.a_key)
    r = await client.post("/v1/wallets", json={"name": "agent-wallet", "chains": ["evm"]}, headers=h)
    mine = (await r.json())["id"]
    r = await client.post(f"/v1/wallets/{mine}/agent-keys", json={}, headers=h)
    assert r.status == 201, await r.text()
    return w, mine, (await r.json())["key"]


async def test_an_agent_key_never_touches_its_tenants_other_wallet(agent_world: Any) -> None:
    """Pay and read routes: 404 (the wallet is not the agent's); managing routes: refused for any wallet."""
    w, _, agent = agent_world
    wrong = []
    for method, template in WALLET_CASES:
        r = await w.client.request(method, w.path(template), json=BODIES.get((method, template)), headers=bearer(agent))
        if r.status != 404 and ((method, template) in AGENT_MAY or r.status != 403):
            wrong.append((method, template, r.status))
    assert not wrong, wrong


async def test_an_agent_key_cannot_manage_its_own_wallet(agent_world: Any) -> None:
    w, mine, agent = agent_world
    wrong = []
    for method, template in MANAGE_CASES:
        path = template.replace("{id}", mine).replace("{aid}", w.ids["approval"])
        r = await w.client.request(method, path, json=BODIES.get((method, template)), headers=bearer(agent))
        if r.status != 403:
            wrong.append((method, template, r.status))
    assert not wrong, wrong
    r = await w.client.get(f"/v1/wallets/{mine}", headers=bearer(agent))
    assert r.status == 200
    assert (await r.json())["status"] == "active"


async def test_an_agent_key_reads_nothing_beyond_its_wallet(agent_world: Any) -> None:
    w, _, agent = agent_world
    leaked = []
    for path in TENANT_READS:
        r = await w.client.get(path, headers=bearer(agent))
        if r.status == 200:
            leaked.append(path)
    listed = await (await w.client.get("/v1/wallets", headers=bearer(agent))).json()
    if w.ids["wallet"] in json.dumps(listed):
        leaked.append("/v1/wallets")
    assert not leaked, leaked


def test_every_wallet_route_is_judged_for_agents() -> None:
    assert set(AGENT_MAY) <= set(WALLET_CASES)
    assert {p for _, p in WALLET_CASES} <= set(OBJECT_ROUTES)
    assert len(MANAGE_CASES) >= 6


async def test_tenant_a_verify_tx_record_does_not_use_up_tenant_b(
    devchain: DevChain, database_url: str, aiohttp_client: Any, redis_url: str
) -> None:
    settings = evm.chain_settings(devchain, database_url, evm.new_key()).with_(
        require_api_keys=True, admin_token=ADMIN, redis_url=redis_url, reconcile_interval=0
    )
    client = await aiohttp_client(create_app(settings))
    keys = {}
    for name in ("a", "b"):
        keys[name] = (await new_key(client, await new_tenant(client, name), ["verify"]))["key"]
    body = (await evm.paid_transfer(devchain)).body
    first = await (await client.post("/v1/payments/verify-tx", json=body, headers=bearer(keys["a"]))).json()
    assert first["verified"] is True, first
    second = await (await client.post("/v1/payments/verify-tx", json=body, headers=bearer(keys["b"]))).json()
    assert second.get("reason") != "transaction_already_used", second
