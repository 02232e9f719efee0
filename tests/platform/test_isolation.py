"""Tenant isolation with API keys on, generated from the app's route table.

Every (method, path) the service mounts must be classified below: an object route (B gets 404 on A's object),
a list (B's answer holds none of A's rows), caller-scoped (acts on the caller's own collection only), public,
operator-only, or cross-tenant by design. A route added without a classification fails
``test_every_route_is_classified``, so the suite grows with the service.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant, op, sign_in
from tests.registry.conftest import resource
from x402.service.app import create_app
from x402.service.appkeys import PLATFORM
from x402.service.settings import Settings

MASTER = secrets.token_hex(32)
ALL_SCOPES = ["verify", "settle", "admin", "wallets", "registry"]
# Which object of tenant A fills each path parameter of an object route.
OBJECT_ROUTES: dict[str, dict[str, str]] = {
    "/v1/tenants/{id}": {"id": "tenant"},
    "/v1/tenants/{id}/keys": {"id": "tenant"},
    "/v1/keys/{id}": {"id": "key"},
    "/v1/keys/{id}/rotate": {"id": "key"},
    "/v1/payments/{id}": {"id": "payment"},
    "/v1/wallets/{id}": {"id": "wallet"},
    "/v1/wallets/{id}/budget": {"id": "wallet"},
    "/v1/wallets/{id}/balance": {"id": "wallet"},
    "/v1/wallets/{id}/payments": {"id": "wallet"},
    "/v1/wallets/{id}/policy": {"id": "wallet"},
    "/v1/wallets/{id}/pause": {"id": "wallet"},
    "/v1/wallets/{id}/resume": {"id": "wallet"},
    "/v1/wallets/{id}/pay": {"id": "wallet"},
    "/v1/wallets/{id}/approvals": {"id": "wallet"},
    "/v1/wallets/{id}/approvals/{aid}/approve": {"id": "wallet", "aid": "approval"},
    "/v1/wallets/{id}/approvals/{aid}/reject": {"id": "wallet", "aid": "approval"},
    "/v1/wallets/{id}/agent-keys": {"id": "wallet"},
    "/v1/webhooks/{id}": {"id": "webhook"},
    "/v1/webhooks/{id}/rotate-secret": {"id": "webhook"},
    "/v1/webhooks/{id}/ping": {"id": "webhook"},
    "/v1/webhooks/{id}/deliveries": {"id": "webhook"},
    "/v1/webhooks/dead-letters/{id}": {"id": "dead_letter"},
    "/v1/webhooks/dead-letters/{id}/replay": {"id": "dead_letter"},
    "/v1/resources/{id}": {"id": "resource"},
    "/v1/resources/{id}/verify": {"id": "resource"},
    "/v1/tenants/{id}/export": {"id": "tenant"},
    "/v1/payto-claims/{id}": {"id": "payto_claim"},
    "/v1/wallets/{id}/trust": {"id": "wallet"},
    "/v1/resources/{id}/usage": {"id": "resource"},
    "/v1/entitlements/{customer}": {"customer": "customer"},
    "/v1/credits/{customer}": {"customer": "customer"},
    "/v1/credits/{customer}/history": {"customer": "customer"},
    "/v1/credits/{customer}/charges/{key}": {"customer": "customer", "key": "charge"},
    "/v1/credits/{customer}/charges/{key}/capture": {"customer": "customer", "key": "charge"},
}
#: Path parameters of the cross-tenant routes (not object routes: B may act on them, see CROSS_TENANT).
CROSS_TENANT_PARAMS: dict[str, dict[str, str]] = {"/v1/resources/{id}/ratings": {"id": "resource"}}
#: Lists: B's answer must hold none of A's markers (ids, addresses, names). Public discovery lists every owner's
#: resources by design, so there only A's tenant id must never appear.
LIST_ROUTES = {
    "/v1/tenants",
    "/v1/payments",
    "/v1/usage",
    "/v1/wallets",
    "/v1/webhooks",
    "/v1/webhooks/dead-letters",
    "/v1/risk/rules",
    "/v1/risk/lists",
    "/v1/risk/audit",
    "/v1/payto-claims",
    "/v1/calls",
    "/v1/calls/summary",
    "/v1/analytics/timeseries",
    "/v1/analytics/resources",
    "/v1/analytics/networks",
    "/v1/analytics/payers",
    "/v1/analytics/failures",
    "/v1/analytics/risk",
    "/v1/analytics/payouts",
    "/v1/analytics/cohorts",
    "/v1/meters",
    "/v1/plans",
}
PUBLIC_LISTS = {"/discovery/resources", "/discovery/search"}
#: Writes into the caller's own collection (a new object of the caller's tenant, or the caller's own lists).
CALLER_SCOPED = {
    ("POST", "/verify"),
    ("POST", "/settle"),
    ("POST", "/v1/payments/verify-tx"),
    ("POST", "/v1/wallets"),
    ("POST", "/v1/webhooks"),
    ("POST", "/v1/webhooks/dead-letters/replay"),
    ("POST", "/v1/resources"),
    ("POST", "/v1/resources/import"),
    ("POST", "/v1/resources/validate"),  # stores nothing; probes the caller's URL
    ("POST", "/v1/payto-claims"),
    # usage events, meters, plans and customers are keyed per tenant: B's write is B's own (tests/metering)
    ("POST", "/v1/events"),
    ("PUT", "/v1/meters/{key}"),
    ("PUT", "/v1/plans/{key}"),
    ("PUT", "/v1/customers/{id}"),
    ("POST", "/v1/credits/{customer}/entries"),  # B's grant goes to B's own account of that name
    ("POST", "/v1/credits/{customer}/burn"),  # burns B's own (empty) account: 409, never A's balance
    # charges burn B's own (empty) account (409); a refund finds no charge of B's under A's key (404)
    ("POST", "/v1/credits/{customer}/charges"),
    ("POST", "/v1/credits/{customer}/charges/{key}/refund"),
    ("PUT", "/v1/risk/rules"),
    ("POST", "/v1/risk/lists/{name}"),
    ("DELETE", "/v1/risk/lists/{name}"),
    # the MCP gateway acts on the caller's own wallets only (second tenant: tests/mcp/test_gateway.py)
    ("POST", "/v1/mcp"),
    # routed calls pay from the caller's own wallet (another tenant's wallet is 404: tests/proxy/test_isolation.py)
    # to any listed resource (the catalogue is public) and record the call in the caller's collection
    ("POST", "/v1/call"),
    *((m, "/v1/proxy/{resourceId}/{path}") for m in ("GET", "POST", "PUT", "PATCH", "DELETE")),
}
#: No tenant data at all.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/.well-known/x402", "/supported", "/docs", "/openapi.json"}
#: Tenant keys get 403 whatever the object.
OPERATOR_ONLY = {
    ("POST", "/v1/tenants"),
    ("POST", "/v1/tenants/{id}/suspend"),
    ("POST", "/v1/tenants/{id}/reactivate"),
    # dead-lettered payment records: a batch mixes tenants (x402/service/platform/deadletters_routes.py)
    ("GET", "/v1/admin/record-dead-letters"),
    ("GET", "/v1/admin/record-dead-letters/{id}"),
    ("POST", "/v1/admin/record-dead-letters/{id}/replay"),
    ("POST", "/v1/admin/record-dead-letters:replay"),
}
#: The dashboard's HTML routes: sign-in/out and page shells holding no tenant data (the pages read and act through
#: the JSON routes classified above, with the session as the credential); B's session is swept below.
DASHBOARD = {
    ("GET", "/dashboard"),
    ("GET", "/dashboard/login"),
    ("POST", "/dashboard/login"),
    ("POST", "/dashboard/dev-login"),
    ("POST", "/dashboard/logout"),
    ("GET", "/dashboard/{page}"),
    ("GET", "/dashboard/payments/{id}"),
    ("GET", "/dashboard/static/{path}"),
}
#: Any tenant may act on another's object here (rating a listed resource); checked for leaks instead.
CROSS_TENANT = {("POST", "/v1/resources/{id}/ratings")}

#: Bodies shaped well enough that only the ownership check can refuse them.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/tenants/{id}"): {"tier": "pro"},
    ("POST", "/v1/tenants/{id}/keys"): {"scopes": ["verify"]},
    ("POST", "/v1/keys/{id}/rotate"): {},
    ("PUT", "/v1/wallets/{id}/policy"): {"perPaymentCap": "5"},
    ("POST", "/v1/wallets/{id}/pause"): {"reason": "hostile"},
    ("POST", "/v1/wallets/{id}/resume"): {},
    ("POST", "/v1/wallets/{id}/pay"): {"url": "https://api.example.com/paid"},
    ("POST", "/v1/wallets/{id}/approvals/{aid}/approve"): {},
    ("POST", "/v1/wallets/{id}/approvals/{aid}/reject"): {},
    ("POST", "/v1/wallets/{id}/agent-keys"): {},
    ("PATCH", "/v1/resources/{id}"): {"description": "taken over"},
    ("PATCH", "/v1/webhooks/{id}"): {"description": "taken over"},
    ("POST", "/v1/webhooks/{id}/rotate-secret"): {"overlapSeconds": 0},
    ("POST", "/v1/resources/{id}/verify"): {},
    ("POST", "/v1/resources/{id}/ratings"): {"rating": 1},
}
#: Registry object routes, once answered 403 ``not_resource_owner`` (or 200 on GET) by the application's own
#: check: they are also checked with the RLS wall off.
APP_WALL_HOLES = {
    ("GET", "/v1/resources/{id}"),
    ("PATCH", "/v1/resources/{id}"),
    ("DELETE", "/v1/resources/{id}"),
    ("POST", "/v1/resources/{id}/verify"),
}


PARAMS = {**OBJECT_ROUTES, **CROSS_TENANT_PARAMS}


def _settings() -> Settings:
    return Settings(database_url="postgresql://unused", require_api_keys=True, master_key=MASTER)


def route_table(app: Any) -> set[tuple[str, str]]:
    """Every (method, path template) the app serves (HEAD twins of GET and the catch-all * left out)."""
    out = set()
    for res in app.router.resources():
        for route in res:
            if route.method not in ("HEAD", "*"):
                out.add((route.method, res.canonical))
    return out


def _classified(method: str, path: str) -> bool:
    return (
        (path in OBJECT_ROUTES and (method, path) not in OPERATOR_ONLY)
        or (method == "GET" and path in LIST_ROUTES | PUBLIC_LISTS | PUBLIC)
        or (method, path) in CALLER_SCOPED | OPERATOR_ONLY | CROSS_TENANT | DASHBOARD
    )


ROUTES = sorted(route_table(create_app(_settings())))
OBJECT_CASES = [(m, p) for m, p in ROUTES if p in OBJECT_ROUTES]


def test_every_route_is_classified() -> None:
    missing = [f"{m} {p}" for m, p in ROUTES if not _classified(m, p)]
    assert not missing, f"routes without an isolation classification (add them to this suite): {missing}"
    # and no stale entries: everything classified is still served
    served = {p for _, p in ROUTES}
    stale = sorted((set(OBJECT_ROUTES) | LIST_ROUTES | PUBLIC_LISTS | PUBLIC) - served)
    stale += sorted(
        f"{m} {p}" for m, p in CALLER_SCOPED | OPERATOR_ONLY | CROSS_TENANT | DASHBOARD if (m, p) not in ROUTES
    )
    assert not stale, f"classified but no longer served: {stale}"
    assert len(OBJECT_CASES) >= 24


@dataclass
class World:
    """Two tenants; A owns one of every object, B holds a key with every scope."""

    client: Any
    app: Any
    a: str
    b: str
    a_key: str
    b_key: str
    ids: dict[str, str] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)
    rls: bool = True

    def path(self, template: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: self.ids[PARAMS[template][m.group(1)]], template)


async def _ok(r: Any, *statuses: int) -> Any:
    body = await r.json()
    assert r.status in (statuses or (200, 201)), (r.status, body)
    return body


async def build_world(client: Any, app: Any, database_url: str) -> World:
    a = await new_tenant(client, "tenant-a")
    b = await new_tenant(client, "tenant-b")
    a_meta = await new_key(client, a, ALL_SCOPES)
    other = await new_key(client, a, ["verify"])
    b_key = (await new_key(client, b, ALL_SCOPES))["key"]
    w = World(client, app, a, b, a_meta["key"], b_key)
    h = bearer(w.a_key)
    w.ids.update(tenant=a, key=other["id"])
    w.markers |= {a, a_meta["id"], other["id"], a_meta["prefix"], other["prefix"]}

    await _ok(await client.post("/verify", json=VERIFY_BODY, headers=h))
    await app[PLATFORM].writer.close()  # A's payment record is committed
    listed = await _ok(await client.get("/v1/payments", headers=h))
    w.ids["payment"] = listed["data"][0]["id"]

    wallet = await _ok(await client.post("/v1/wallets", json={"name": "a-wallet", "chains": ["evm"]}, headers=h))
    w.ids["wallet"] = wallet["id"]
    w.markers |= {wallet["id"], wallet["addresses"]["evm"].lower()}
    agent = await _ok(await client.post(f"/v1/wallets/{wallet['id']}/agent-keys", json={}, headers=h))
    w.markers |= {agent["id"], agent["prefix"]}
    hook_url = f"https://hooks.example.com/{secrets.token_hex(6)}"
    hook = await _ok(await client.post("/v1/webhooks", json={"url": hook_url, "events": ["payment.made"]}, headers=h))
    w.ids["webhook"] = hook["id"]
    w.markers |= {hook["id"], hook_url}

    rule = f"rule-{secrets.token_hex(4)}"
    rules = {"custom": [{"name": rule, "when": "amount > 10", "action": "flag"}]}
    await _ok(await client.put("/v1/risk/rules", json=rules, headers=h))
    denied = "0x" + secrets.token_hex(20)
    await _ok(await client.post("/v1/risk/lists/deny", json={"addresses": [denied]}, headers=h))
    w.ids["denied"] = denied
    w.markers |= {rule, denied}

    meter, plan, customer = (f"{k}-{secrets.token_hex(4)}" for k in ("meter", "plan", "cus"))
    await _ok(await client.put(f"/v1/meters/{meter}", json={"aggregation": "count"}, headers=h))
    await _ok(await client.put(f"/v1/plans/{plan}", json={"limits": {meter: 5}}, headers=h))
    await _ok(await client.put(f"/v1/customers/{customer}", json={"plan": plan}, headers=h))
    await _ok(await client.post(f"/v1/credits/{customer}/entries", json={"kind": "grant", "credits": 7}, headers=h))
    w.ids["customer"] = customer
    charge = f"req-{secrets.token_hex(4)}"
    await _ok(await client.post(f"/v1/credits/{customer}/charges", json={"key": charge, "credits": 1}, headers=h))
    w.ids["charge"] = charge
    w.markers |= {meter, plan, customer}

    url = f"https://api.example.com/{secrets.token_hex(6)}"
    res = await _ok(await client.post("/v1/resources", json=resource(url), headers=h))
    w.ids["resource"] = res["id"]
    w.markers |= {res["id"]}

    # approvals and dead letters come out of paying and failing deliveries (tests/wallets drive those flows);
    # here only who owns them matters, so they are written as those flows write them
    owner = await asyncpg.connect(database_url)
    try:
        w.ids["approval"] = str(
            await owner.fetchval(
                """INSERT INTO wallet_approvals (id, wallet_id, status, amount, network, asset, pay_to, url, expires_at)
                   VALUES ($1, $2, 'pending', 10, 'eip155:31337', '0xasset', '0xpayto', $3, now() + interval '1 hour')
                   RETURNING id""",
                uuid.uuid4(),
                uuid.UUID(wallet["id"]),
                url,
            )
        )
        event = await owner.fetchrow(
            """INSERT INTO provider_events (id, tenant_id, type, api_version, data, created_at, dispatched)
               VALUES ($1, $2, 'payment.made', '2026-12-01', '{}', now(), true) RETURNING id, seq""",
            uuid.uuid4(),
            uuid.UUID(a),
        )
        assert event is not None
        delivery = await owner.fetchval(
            """INSERT INTO webhook_deliveries (endpoint_id, event_id, event_seq, status, attempts, last_error)
               VALUES ($1, $2, $3, 'dead', 5, 'a-dead-letter-marker') RETURNING id""",
            uuid.UUID(hook["id"]),
            event["id"],
            event["seq"],
        )
        w.ids["dead_letter"] = str(
            await owner.fetchval(
                """INSERT INTO webhook_dead_letters (delivery_id, endpoint_id, event_id, attempts, last_error)
                   VALUES ($1, $2, $3, 5, 'a-dead-letter-marker') RETURNING id""",
                delivery,
                uuid.UUID(hook["id"]),
                event["id"],
            )
        )
        claimed = "0x" + "c1" * 20
        w.ids["payto_claim"] = str(
            await owner.fetchval(
                """INSERT INTO payto_claims (tenant_id, address, proof_kind, signature)
                   VALUES ($1, $2, 'eip191', '0x00') RETURNING id""",
                uuid.UUID(a),
                claimed,
            )
        )
        call = await owner.fetchval(
            """INSERT INTO calls (id, tenant_id, wallet_id, resource_id, owner_tenant_id, url, method, amount,
                                  fee_bps, fee, status, latency_ms)
               VALUES ($1, $2, $3, $4, $2, $5, 'GET', 7, 100, 0, 'paid', 3) RETURNING id::text""",
            uuid.uuid4(),
            uuid.UUID(a),
            uuid.UUID(wallet["id"]),
            uuid.UUID(res["id"]),
            url,
        )
        w.markers |= {w.ids["approval"], str(event["id"]), "a-dead-letter-marker", w.ids["payto_claim"], claimed}
        w.markers |= {call}
    finally:
        await owner.close()
    # A sees its own objects through every list (so an empty answer for B means something)
    assert await _ok(await client.get(f"/v1/wallets/{wallet['id']}/approvals", headers=h))
    dead = await _ok(await client.get("/v1/webhooks/dead-letters", headers=h))
    assert "a-dead-letter-marker" in json.dumps(dead)
    return w


@pytest.fixture(params=["both-walls", "app-wall-only"])
async def world(request: Any, psettings: Settings, aiohttp_client: Any, database_url: str) -> World:
    """Both walls (the service as it runs), and the application's own checks alone (row-level security off)."""
    app = create_app(psettings.with_(master_key=MASTER, row_security=request.param == "both-walls"))
    client = await aiohttp_client(app)
    w = await build_world(client, app, database_url)
    w.rls = request.param == "both-walls"
    return w


async def _as_b(w: World, method: str, template: str) -> tuple[int, Any]:
    body = BODIES.get((method, template))
    r = await w.client.request(method, w.path(template), json=body, headers=bearer(w.b_key))
    text = await r.text()
    return r.status, (json.loads(text) if text else None)


async def test_tenant_b_gets_404_on_every_method_of_every_object_route(world: World) -> None:
    w = world
    wrong = []
    for method, template in OBJECT_CASES:
        if (method, template) in CROSS_TENANT:
            continue
        status, body = await _as_b(w, method, template)
        if status != 404 or body.get("status") != 404:
            wrong.append((method, template, status, body))
        else:
            # the answer tells B nothing about A's object
            assert not any(m in json.dumps(body) for m in w.markers), (method, template, body)
    assert not wrong, wrong
    await _a_is_untouched(w)


@pytest.mark.parametrize(("method", "template"), sorted(APP_WALL_HOLES))
async def test_registry_404s_without_the_rls_wall(
    psettings: Settings, aiohttp_client: Any, database_url: str, method: str, template: str
) -> None:
    app = create_app(psettings.with_(master_key=MASTER, row_security=False))
    w = await build_world(await aiohttp_client(app), app, database_url)
    status, body = await _as_b(w, method, template)
    assert status == 404, body


async def _a_is_untouched(w: World) -> None:
    h = bearer(w.a_key)
    wallet = await _ok(await w.client.get(f"/v1/wallets/{w.ids['wallet']}", headers=h))
    assert wallet["status"] == "active"
    keys = await _ok(await w.client.get(f"/v1/tenants/{w.a}/keys", headers=h))
    assert all("revokedAt" not in k for k in keys["data"])
    tenant = await _ok(await w.client.get(f"/v1/tenants/{w.a}", headers=h))
    assert tenant["tier"] == "free"
    hooks = await _ok(await w.client.get("/v1/webhooks", headers=h))
    assert [x["id"] for x in hooks["webhooks"]] == [w.ids["webhook"]]
    assert hooks["webhooks"][0]["description"] == ""
    letter = await _ok(await w.client.get(f"/v1/webhooks/dead-letters/{w.ids['dead_letter']}", headers=h))
    assert (letter["replayCount"], letter["deliveryStatus"]) == (0, "dead")
    approvals = await _ok(await w.client.get(f"/v1/wallets/{w.ids['wallet']}/approvals", headers=h))
    assert "pending" in json.dumps(approvals)
    res = await _ok(await w.client.get(f"/v1/resources/{w.ids['resource']}", headers=h))
    assert res["description"] == "A paid resource"
    lists = await _ok(await w.client.get("/v1/risk/lists", headers=h))
    assert w.ids["denied"] in lists["deny"]


async def test_tenant_b_dashboard_session_is_b_and_nothing_more(world: World) -> None:
    """B signed in to the dashboard: 404 on every A object route, no A rows in lists or pages (session = key)."""
    w = world
    csrf = await sign_in(w.client, w.b_key)
    wrong = []
    for method, template in OBJECT_CASES:
        if (method, template) in CROSS_TENANT:
            continue
        body = BODIES.get((method, template))
        r = await w.client.request(method, w.path(template), json=body, headers={"X-CSRF-Token": csrf})
        if r.status != 404:
            wrong.append((method, template, r.status, await r.text()))
    assert not wrong, wrong
    pages = [p for m, p in sorted(DASHBOARD) if m == "GET" and "{" not in p and p != "/dashboard/login"]
    pages += [f"/dashboard/{slug}" for slug in ("overview", "payments", "wallets", "keys", "webhooks", "risk", "usage")]
    for path in sorted(LIST_ROUTES) + pages + [f"/dashboard/payments/{w.ids['payment']}"]:
        r = await w.client.get(path)
        text = await r.text()
        assert r.status == 200, (path, text)
        leaked = sorted(m for m in w.markers if m in text.lower() or m in text)
        assert not leaked, (path, leaked)
    await _a_is_untouched(w)


async def test_lists_never_show_tenant_a_rows(world: World) -> None:
    w = world
    h = bearer(w.b_key)
    for template in sorted(LIST_ROUTES):
        r = await w.client.get(template, headers=h)
        text = await r.text()
        assert r.status == 200, (template, text)
        leaked = sorted(m for m in w.markers if m in text.lower() or m in text)
        assert not leaked, (template, leaked)
    tenants = await _ok(await w.client.get("/v1/tenants", headers=h))
    assert [t["id"] for t in tenants["data"]] == [w.b]
    assert (await _ok(await w.client.get("/v1/usage", headers=h)))["total"] == 0
    assert (await _ok(await w.client.get("/v1/payments", headers=h)))["data"] == []
    assert (await _ok(await w.client.get("/v1/wallets", headers=h)))["wallets"] == []


async def test_public_discovery_never_shows_tenant_ids(world: World) -> None:
    w = world
    for template in sorted(PUBLIC_LISTS):
        text = await (await w.client.get(template)).text()
        assert w.ids["resource"] in text  # A's listing is public: that is what discovery is for
        assert w.a not in text, template


async def test_rating_another_tenants_resource_leaks_nothing(world: World) -> None:
    status, body = await _as_b(world, "POST", "/v1/resources/{id}/ratings")
    assert status in (200, 201), body
    assert world.a not in json.dumps(body)


async def test_caller_scoped_writes_stay_in_the_callers_collection(world: World) -> None:
    w = world
    hb, ha = bearer(w.b_key), bearer(w.a_key)
    # B "removes" A's denied address from the deny list: only B's own list is touched
    r = await w.client.request("DELETE", "/v1/risk/lists/deny", json={"addresses": [w.ids["denied"]]}, headers=hb)
    assert r.status == 200, await r.text()
    assert w.ids["denied"] in (await _ok(await w.client.get("/v1/risk/lists", headers=ha)))["deny"]
    # B's rule document is B's; A's stays as it was
    await _ok(await w.client.put("/v1/risk/rules", json={"custom": []}, headers=hb))
    assert (await _ok(await w.client.get("/v1/risk/rules", headers=ha)))["rules"]["custom"]
    # B creates a wallet: it is B's, A does not see it
    mine = await _ok(await w.client.post("/v1/wallets", json={"name": "b", "chains": ["evm"]}, headers=hb))
    assert mine["id"] not in json.dumps(await _ok(await w.client.get("/v1/wallets", headers=ha)))
    r = await w.client.get(f"/v1/wallets/{mine['id']}", headers=ha)
    assert r.status == 404


async def test_tenant_admin_cannot_act_as_operator(client: Any) -> None:
    a = await new_tenant(client, "tenant-a")
    key = (await new_key(client, a))["key"]
    for method, path in sorted(OPERATOR_ONLY):
        r = await client.request(method, path.replace("{id}", a), json={"name": "mine"}, headers=bearer(key))
        assert r.status == 403
    r = await client.patch(f"/v1/tenants/{a}", json={"tier": "enterprise"}, headers=bearer(key))
    assert r.status == 403
    no_admin = (await new_key(client, a, ["verify"]))["key"]
    r = await client.get(f"/v1/tenants/{a}/keys", headers=bearer(no_admin))
    assert r.status == 403
    assert (await r.json())["code"] == "insufficient_scope"
    assert (await client.post("/v1/tenants", json={"name": "ok"}, headers=op())).status == 201


async def test_anonymous_records_when_keys_are_off(settings: Any, aiohttp_client: Any) -> None:
    app = create_app(settings)
    client = await aiohttp_client(app)
    r = await client.post("/verify", json=VERIFY_BODY)
    assert r.status == 200
    await app[PLATFORM].writer.close()
    row = await app[PLATFORM].store.pool.fetchrow("SELECT * FROM payments")
    assert row is not None
    assert row["tenant_id"] is None
    assert row["kind"] == "verify"
    assert row["status"] == "invalid"
    assert row["reason"] == "invalid_network"
    assert row["amount"] == 10000


async def test_replaying_dead_letters_by_filter_never_touches_another_tenant(world: World) -> None:
    w = world
    for body in ({}, {"endpointId": w.ids["webhook"]}, {"type": "payment.made"}):
        r = await w.client.post("/v1/webhooks/dead-letters/replay", json=body, headers=bearer(w.b_key))
        doc = await _ok(r)
        assert (doc["replayed"], doc["deadLetterIds"]) == (0, []), (body, doc)
    await _a_is_untouched(w)
