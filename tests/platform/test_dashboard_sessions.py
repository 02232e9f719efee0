"""Dashboard sessions over real Postgres: an API key exchanged for a session that can do exactly what the key can.

The session is one more credential of the platform middleware (no second permission model): the same routes, the
same scope and tenant checks, plus CSRF on unsafe methods, idle expiry, sign-out, and the key's revocation.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.platform.conftest import CSRF_FIELD, VERIFY_BODY, bearer, new_key, new_tenant, sign_in
from x402.service.app import create_app
from x402.service.appkeys import PLATFORM
from x402.service.platform.sessions import COOKIE
from x402.service.settings import Settings


async def _fresh(client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    """A second browser on the same server (its own cookie jar)."""
    other: TestClient[Any, Any] = TestClient(client.server)
    await other.start_server()
    return other


async def test_session_does_exactly_what_its_key_does(client: TestClient[Any, Any]) -> None:
    tenant = await new_tenant(client, "acme")
    admin = await new_key(client, tenant, ["verify", "admin"])
    narrow = await new_key(client, tenant, ["verify"])
    # the key without the admin scope: 403 on the key list, with the key and with its session alike
    r = await client.get(f"/v1/tenants/{tenant}/keys", headers=bearer(narrow["key"]))
    assert (r.status, (await r.json())["code"]) == (403, "insufficient_scope")
    csrf = await sign_in(client, narrow["key"])
    r = await client.get(f"/v1/tenants/{tenant}/keys")
    assert (r.status, (await r.json())["code"]) == (403, "insufficient_scope")
    r = await client.post(f"/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}, headers={"X-CSRF-Token": csrf})
    assert (r.status, (await r.json())["code"]) == (403, "insufficient_scope")
    # what the narrow key may do, its session may do: its own payments list
    r = await client.get("/v1/payments")
    assert r.status == 200, await r.text()

    browser = await _fresh(client)
    try:
        csrf = await sign_in(browser, admin["key"])
        r = await browser.get(f"/v1/tenants/{tenant}/keys")
        assert r.status == 200
        assert {k["id"] for k in (await r.json())["data"]} >= {admin["id"], narrow["id"]}
        # the admin session may create keys, but never grant a scope its key lacks
        r = await browser.post(
            f"/v1/tenants/{tenant}/keys", json={"scopes": ["wallets"]}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status == 201, await r.text()
    finally:
        await browser.close()


async def test_unsafe_methods_need_the_sessions_csrf_token(client: TestClient[Any, Any]) -> None:
    tenant = await new_tenant(client, "acme")
    key = await new_key(client, tenant, ["verify", "admin"])
    csrf = await sign_in(client, key["key"])
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        r = await client.post(f"/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}, headers=headers)
        assert (r.status, (await r.json())["code"]) == (403, "csrf_failed")
    r = await client.post("/verify", json=VERIFY_BODY)
    assert (r.status, (await r.json())["code"]) == (403, "csrf_failed")
    r = await client.post("/verify", json=VERIFY_BODY, headers={"X-CSRF-Token": csrf})
    assert r.status == 200
    # a key in the header is its own credential: no CSRF there (browsers do not add it on their own)
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key["key"]))
    assert r.status == 200


async def test_second_tenants_session_sees_nothing_of_the_first(client: TestClient[Any, Any]) -> None:
    a = await new_tenant(client, "tenant-a")
    b = await new_tenant(client, "tenant-b")
    a_key = await new_key(client, a, ["verify", "admin"])
    b_key = await new_key(client, b, ["verify", "settle", "admin", "wallets", "registry"])
    assert (await client.post("/verify", json=VERIFY_BODY, headers=bearer(a_key["key"]))).status == 200
    await client.app[PLATFORM].writer.close()
    listed = await (await client.get("/v1/payments", headers=bearer(a_key["key"]))).json()
    payment = listed["data"][0]["id"]

    csrf = await sign_in(client, b_key["key"])
    for path in (f"/v1/payments/{payment}", f"/v1/tenants/{a}", f"/v1/tenants/{a}/keys"):
        r = await client.get(path)
        assert r.status == 404, (path, await r.text())
    r = await client.delete(f"/v1/keys/{a_key['id']}", headers={"X-CSRF-Token": csrf})
    assert r.status == 404
    page = await (await client.get("/v1/payments")).text()
    assert payment not in page
    assert a not in page
    for slug in ("overview", "payments", "keys", "wallets", "usage"):
        html = await (await client.get(f"/dashboard/{slug}")).text()
        assert a not in html
        assert a_key["prefix"] not in html
        assert b in html  # the page knows its own tenant only


async def test_revoking_the_key_ends_its_sessions(client: TestClient[Any, Any]) -> None:
    tenant = await new_tenant(client, "acme")
    admin = await new_key(client, tenant, ["admin"])
    other = await new_key(client, tenant, ["verify"])
    browser = await _fresh(client)
    try:
        await sign_in(browser, other["key"])
        assert (await browser.get("/v1/payments")).status == 200
        r = await client.delete(f"/v1/keys/{other['id']}", headers=bearer(admin["key"]))
        assert r.status == 200
        client.app[PLATFORM].auth.forget()
        r = await browser.get("/v1/payments")
        assert (r.status, (await r.json())["code"]) == (401, "api_key_revoked")
        # the page itself sends the browser back to sign-in
        r = await browser.get("/dashboard/payments", allow_redirects=False)
        assert r.status == 303
        assert r.headers["Location"].startswith("/dashboard/login")
    finally:
        await browser.close()


async def test_idle_sessions_expire_and_sign_out_ends_the_session(
    client: TestClient[Any, Any], psettings: Settings
) -> None:
    tenant = await new_tenant(client, "acme")
    key = await new_key(client, tenant, ["verify"])
    await sign_in(client, key["key"])
    conn = await asyncpg.connect(psettings.database_url)
    try:
        idle = psettings.dashboard_idle_seconds
        await conn.execute("UPDATE dashboard_sessions SET last_seen_at = now() - $1::interval", _seconds(idle + 1))
        r = await client.get("/v1/payments")
        assert (r.status, (await r.json())["code"]) == (401, "session_expired")
        assert await conn.fetchval("SELECT count(*) FROM dashboard_sessions") == 0

        csrf = await sign_in(client, key["key"])
        r = await client.post("/dashboard/logout", data={"csrf": "wrong"}, allow_redirects=False)
        assert r.status == 403
        assert await conn.fetchval("SELECT count(*) FROM dashboard_sessions") == 1
        old = next(c.value for c in client.session.cookie_jar if c.key == COOKIE)
        r = await client.post("/dashboard/logout", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        assert r.headers["Location"] == "/dashboard/login"
        assert await conn.fetchval("SELECT count(*) FROM dashboard_sessions") == 0
        assert r.cookies[COOKIE].value == ""  # the browser forgets it
        r = await client.get("/v1/payments", headers={"Cookie": f"{COOKIE}={old}"})
        assert (r.status, (await r.json())["code"]) == (401, "session_invalid")
    finally:
        await conn.close()


def _seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


async def test_sign_in_refuses_bad_keys_and_forged_forms(client: TestClient[Any, Any]) -> None:
    tenant = await new_tenant(client, "acme")
    key = await new_key(client, tenant, ["verify"])
    page = await (await client.get("/dashboard/login")).text()
    match = CSRF_FIELD.search(page)
    assert match is not None
    r = await client.post("/dashboard/login", data={"key": "x402_live_nope", "csrf": match.group(1)})
    assert r.status == 401
    assert "invalid API key" in await r.text()
    assert COOKIE not in r.cookies
    # a form posted from elsewhere carries no (or a wrong) sign-in token
    fresh = await _fresh(client)
    try:
        r = await fresh.post("/dashboard/login", data={"key": key["key"], "csrf": "forged"}, allow_redirects=False)
        assert r.status == 403
        assert COOKIE not in r.cookies
        # an open redirect is not possible through ?next=
        page = await (await fresh.get("/dashboard/login?next=https://evil.example/")).text()
        assert "evil.example" not in page
        # no session: pages send the browser to sign-in; dev sign-in exists only in dev mode
        r = await fresh.get("/dashboard/wallets", allow_redirects=False)
        assert r.status == 303
        assert r.headers["Location"] in (
            "/dashboard/login?next=%2Fdashboard%2Fwallets",
            "/dashboard/login?next=/dashboard/wallets",
        )
        r = await fresh.post("/dashboard/dev-login", data={}, allow_redirects=False)
        assert r.status == 404
    finally:
        await fresh.close()


async def test_pages_are_self_contained_and_locked_down(psettings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(psettings))
    tenant = await new_tenant(client, "acme")
    key = await new_key(client, tenant, ["verify"])
    await sign_in(client, key["key"])
    for slug in ("overview", "payments", "resources", "wallets", "keys", "webhooks", "risk", "usage"):
        r = await client.get(f"/dashboard/{slug}")
        html = await r.text()
        assert r.status == 200
        assert r.content_type == "text/html"
        assert not re.findall(r'(?:src|href|action)="(?:https?:)?//', html), "nothing loads from elsewhere"
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert 'name="viewport"' in html
        assert '<html lang="en">' in html
    for asset in ("app.js", "app.css", "vendor/uplot.min.js", "vendor/uplot.min.css", "vendor/uplot.LICENSE"):
        r = await client.get(f"/dashboard/static/{asset}")
        assert r.status == 200, asset


async def test_the_cookie_is_secure_when_served_over_https(psettings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(psettings.with_(public_url="https://pay.example.com")))
    tenant = await new_tenant(client, "acme")
    key = await new_key(client, tenant, ["verify"])
    r = await client.get("/dashboard/login")
    login_cookie = r.cookies["x402_login_csrf"]
    assert login_cookie["secure"]
    match = CSRF_FIELD.search(await r.text())
    assert match is not None
    # the test client speaks plain http, so it holds back Secure cookies: hand the sign-in cookie over as a browser
    # behind the https proxy would
    r = await client.post(
        "/dashboard/login",
        data={"key": key["key"], "csrf": match.group(1)},
        headers={"Cookie": f"x402_login_csrf={login_cookie.value}"},
        allow_redirects=False,
    )
    assert r.status == 303
    assert r.cookies[COOKIE]["secure"]
    assert r.cookies[COOKIE]["httponly"]
