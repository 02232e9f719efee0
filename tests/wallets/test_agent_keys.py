"""Agent keys with API keys on: an agent key pays from and reads its own wallet only. It never changes a policy,
raises a cap, resumes a paused wallet, approves its own payment or reaches another wallet (404); policy changes
need a tenant key with the wallets scope; another tenant's keys see none of it (404)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.harness.paychain import PayChain
from tests.platform.conftest import ADMIN, bearer, new_key, new_tenant, op
from tests.wallets.conftest import PRICE, ServiceFactory, Upstream, pay, service_factory


@pytest.fixture
async def wallet_service(chain: PayChain, database_url: str, aiohttp_client: Any) -> ServiceFactory:
    """These tests make their own tenants and keys: one run, no default tenant key."""
    return service_factory(chain, database_url, aiohttp_client, keys_on=False)


Client = TestClient[Any, Any]


@pytest.fixture
async def keyed(wallet_service: ServiceFactory, redis_url: str) -> Client:
    """The wallet service with API keys required."""
    return await wallet_service(require_api_keys=True, admin_token=ADMIN, redis_url=redis_url)


async def _tenant(client: Client, name: str) -> tuple[str, dict[str, str]]:
    tenant = await new_tenant(client, name, tier="enterprise")
    return tenant, bearer((await new_key(client, tenant, ["wallets", "admin", "verify"]))["key"])


async def _wallet(client: Client, chain: PayChain, headers: dict[str, str], policy: dict[str, Any]) -> str:
    r = await client.post("/v1/wallets", json={"name": "w", "chains": [chain.kind], "policy": policy}, headers=headers)
    wallet = await r.json()
    assert r.status == 201, wallet
    await chain.fund(wallet["addresses"][chain.kind], 10**9)
    return str(wallet["id"])


async def _agent_key(client: Client, wallet_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post(f"/v1/wallets/{wallet_id}/agent-keys", headers=headers)
    made: dict[str, Any] = await r.json()
    assert r.status == 201, made
    assert (made["agent"], made["scopes"]) == (True, ["wallets"])
    return made


async def _status(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, str]:
    r = await client.request(method, path, json=body, headers=headers)
    doc = await r.json() if r.content_type.endswith("json") else {}
    return r.status, str(doc.get("code", ""))


async def test_agent_key_pays_and_reads_its_own_wallet_only(keyed: Client, upstream: Upstream, chain: PayChain) -> None:
    a, as_a = await _tenant(keyed, "tenant-a")
    policy = {"totalBudget": str(PRICE * 10), "perPaymentCap": str(PRICE)}
    mine = await _wallet(keyed, chain, as_a, policy)
    sibling = await _wallet(keyed, chain, as_a, policy)
    agent = bearer((await _agent_key(keyed, mine, as_a))["key"])

    # pays from and reads its own wallet
    status, doc = await pay(keyed, mine, upstream.paid_url, headers=agent)
    assert status == 200, doc
    assert doc["payment"]["paid"] is True
    for path in ("", "/budget", "/balance", "/payments", "/approvals"):
        r = await keyed.get(f"/v1/wallets/{mine}{path}", headers=agent)
        assert r.status == 200, (path, await r.text())
    listed = await (await keyed.get("/v1/wallets", headers=agent)).json()
    assert [w["id"] for w in listed["wallets"]] == [mine]

    # never another wallet of its own tenant: 404 on every method
    body: dict[str, Any] | None  # a JSON body, or none, in each loop below
    for method, path, body in (
        ("GET", f"/v1/wallets/{sibling}", None),
        ("GET", f"/v1/wallets/{sibling}/budget", None),
        ("GET", f"/v1/wallets/{sibling}/payments", None),
        ("GET", f"/v1/wallets/{sibling}/approvals", None),
        ("POST", f"/v1/wallets/{sibling}/pay", {"url": upstream.paid_url}),
        ("PUT", f"/v1/wallets/{sibling}/policy", {"totalBudget": "1"}),
        ("POST", f"/v1/wallets/{sibling}/pause", {}),
        ("POST", f"/v1/wallets/{sibling}/resume", None),
        ("POST", f"/v1/wallets/{sibling}/agent-keys", None),
    ):
        assert await _status(keyed, method, path, agent, body) == (404, "wallet_not_found"), (method, path)

    # never a policy change (raising a cap included), a pause, a new key or a wallet
    for method, path, body in (
        ("PUT", f"/v1/wallets/{mine}/policy", {"totalBudget": str(PRICE * 10**6), "perPaymentCap": str(PRICE * 100)}),
        ("PUT", f"/v1/wallets/{mine}/policy", {}),
        ("POST", f"/v1/wallets/{mine}/pause", {}),
        ("POST", f"/v1/wallets/{mine}/agent-keys", None),
        ("POST", "/v1/wallets", {"chains": ["evm"]}),
        ("POST", "/v1/webhooks", {"url": "https://hooks.example.com/x"}),
        ("GET", "/v1/webhooks", None),
        ("GET", "/v1/webhooks/dead-letters", None),
    ):
        assert await _status(keyed, method, path, agent, body) == (403, "wallet_forbidden"), (method, path)
    got = await (await keyed.get(f"/v1/wallets/{mine}", headers=as_a)).json()
    assert got["policy"]["perPaymentCap"] == str(PRICE)
    assert got["policy"]["totalBudget"] == str(PRICE * 10)

    # nothing of the tenant beyond its wallet
    for method, path, body, expected in (
        ("GET", "/v1/payments", None, (403, "agent_key_not_allowed")),
        ("GET", "/v1/usage", None, (403, "agent_key_not_allowed")),
        ("GET", "/v1/payto-claims", None, (403, "agent_key_not_allowed")),
        ("GET", f"/v1/tenants/{a}/keys", None, (403, "insufficient_scope")),
        ("POST", f"/v1/tenants/{a}/keys", {"scopes": ["wallets"]}, (403, "insufficient_scope")),
        ("GET", "/v1/risk/rules", None, (403, "insufficient_scope")),
        ("POST", "/v1/resources", {"url": "https://x.example.com/"}, (403, "insufficient_scope")),
    ):
        assert await _status(keyed, method, path, agent, body) == expected, (method, path)


async def test_agent_key_cannot_resume_or_approve(keyed: Client, upstream: Upstream, chain: PayChain) -> None:
    _, as_a = await _tenant(keyed, "tenant-a")
    mine = await _wallet(keyed, chain, as_a, {"approvalThreshold": str(PRICE - 1)})
    agent = bearer((await _agent_key(keyed, mine, as_a))["key"])

    # its payment waits for approval; it can neither approve nor reject it
    status, doc = await pay(keyed, mine, upstream.paid_url, headers=agent)
    assert (status, doc["code"]) == (202, "approval_pending"), doc
    approval = doc["approvalId"]
    for verb in ("approve", "reject"):
        path = f"/v1/wallets/{mine}/approvals/{approval}/{verb}"
        assert await _status(keyed, "POST", path, agent) == (403, "wallet_forbidden")
    status, doc = await pay(keyed, mine, upstream.paid_url, headers=agent, approvalId=approval)
    assert (status, doc["code"]) == (409, "approval_invalid"), doc
    pending = await (await keyed.get(f"/v1/wallets/{mine}/approvals?status=pending", headers=agent)).json()
    assert [p["id"] for p in pending["approvals"]] == [approval]
    # the tenant key approves; then the agent pays
    r = await keyed.post(f"/v1/wallets/{mine}/approvals/{approval}/approve", headers=as_a)
    assert r.status == 200, await r.text()
    status, doc = await pay(keyed, mine, upstream.paid_url, headers=agent, approvalId=approval)
    assert status == 200, doc

    # paused by the tenant: the agent can neither resume nor pay
    assert (await keyed.post(f"/v1/wallets/{mine}/pause", json={"reason": "review"}, headers=as_a)).status == 200
    assert await _status(keyed, "POST", f"/v1/wallets/{mine}/resume", agent) == (403, "wallet_forbidden")
    status, doc = await pay(keyed, mine, upstream.paid_url, headers=agent)
    assert (status, doc["code"]) == (423, "wallet_paused")
    got = await (await keyed.get(f"/v1/wallets/{mine}", headers=agent)).json()
    assert (got["status"], got["pausedReason"]) == ("paused", "review")


async def test_policy_changes_need_a_tenant_key_with_the_wallets_scope(keyed: Client, chain: PayChain) -> None:
    a, as_a = await _tenant(keyed, "tenant-a")
    mine = await _wallet(keyed, chain, as_a, {"totalBudget": str(PRICE)})
    verify_only = bearer((await new_key(keyed, a, ["verify", "admin"]))["key"])
    path = f"/v1/wallets/{mine}/policy"
    assert await _status(keyed, "PUT", path, verify_only, {"totalBudget": "1"}) == (403, "insufficient_scope")
    assert await _status(keyed, "PUT", path, {}, {"totalBudget": "1"}) == (401, "api_key_required")
    r = await keyed.put(path, json={"totalBudget": str(PRICE * 2)}, headers=as_a)
    assert r.status == 200, await r.text()
    assert (await r.json())["policy"]["totalBudget"] == str(PRICE * 2)


async def test_another_tenants_keys_get_404(keyed: Client, upstream: Upstream, chain: PayChain) -> None:
    _, as_a = await _tenant(keyed, "tenant-a")
    _, as_b = await _tenant(keyed, "tenant-b")
    a_wallet = await _wallet(keyed, chain, as_a, {"approvalThreshold": str(PRICE - 1)})
    _, doc = await pay(keyed, a_wallet, upstream.paid_url, headers=as_a)
    approval = doc["approvalId"]
    b_wallet = await _wallet(keyed, chain, as_b, {})
    b_agent = bearer((await _agent_key(keyed, b_wallet, as_b))["key"])
    for who in (as_b, b_agent):
        for method, path, body in (
            ("GET", f"/v1/wallets/{a_wallet}", None),
            ("GET", f"/v1/wallets/{a_wallet}/budget", None),
            ("GET", f"/v1/wallets/{a_wallet}/balance", None),
            ("GET", f"/v1/wallets/{a_wallet}/payments", None),
            ("GET", f"/v1/wallets/{a_wallet}/approvals", None),
            ("POST", f"/v1/wallets/{a_wallet}/pay", {"url": upstream.paid_url}),
            ("PUT", f"/v1/wallets/{a_wallet}/policy", {"totalBudget": "1"}),
            ("POST", f"/v1/wallets/{a_wallet}/pause", {}),
            ("POST", f"/v1/wallets/{a_wallet}/resume", None),
            ("POST", f"/v1/wallets/{a_wallet}/approvals/{approval}/approve", None),
            ("POST", f"/v1/wallets/{a_wallet}/approvals/{approval}/reject", None),
            ("POST", f"/v1/wallets/{a_wallet}/agent-keys", None),
        ):
            assert await _status(keyed, method, path, who, body) == (404, "wallet_not_found"), (method, path)
    listed = await (await keyed.get("/v1/wallets", headers=as_b)).json()
    assert [w["id"] for w in listed["wallets"]] == [b_wallet]
    pending = await (await keyed.get(f"/v1/wallets/{a_wallet}/approvals?status=pending", headers=as_a)).json()
    assert [p["id"] for p in pending["approvals"]] == [approval]


async def test_agent_keys_stay_limited_when_rotated_or_unbound(
    keyed: Client, chain: PayChain, database_url: str
) -> None:
    _, as_a = await _tenant(keyed, "tenant-a")
    mine = await _wallet(keyed, chain, as_a, {"totalBudget": str(PRICE)})
    sibling = await _wallet(keyed, chain, as_a, {})
    made = await _agent_key(keyed, mine, as_a)

    # a rotated agent key is still an agent key of the same wallet
    r = await keyed.post(f"/v1/keys/{made['id']}/rotate", json={}, headers=op())
    rotated = await r.json()
    assert r.status == 201, rotated
    assert rotated["agent"] is True
    new = bearer(rotated["key"])
    assert (await keyed.get(f"/v1/wallets/{mine}", headers=new)).status == 200
    assert await _status(keyed, "GET", f"/v1/wallets/{sibling}", new) == (404, "wallet_not_found")
    assert await _status(keyed, "PUT", f"/v1/wallets/{mine}/policy", new, {"totalBudget": "1"}) == (
        403,
        "wallet_forbidden",
    )

    # with its binding gone (e.g. the wallet row was deleted) it reaches no wallet, it never becomes a tenant key
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM wallet_agent_keys WHERE key_id = $1", uuid.UUID(rotated["id"]))
    finally:
        await conn.close()
    listed = await (await keyed.get("/v1/wallets", headers=new)).json()
    assert listed["wallets"] == []
    for wallet_id in (mine, sibling):
        assert await _status(keyed, "GET", f"/v1/wallets/{wallet_id}", new) == (404, "wallet_not_found")
    assert await _status(keyed, "POST", "/v1/wallets", new, {"chains": ["evm"]}) == (403, "wallet_forbidden")
