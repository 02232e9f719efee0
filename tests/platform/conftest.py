"""Platform test helpers: an app with API keys required, the operator token, tenants and keys made through the API."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.harness.wire import UNCONFIGURED_REQUIREMENTS
from x402.service.app import create_app
from x402.service.platform.sessions import COOKIE
from x402.service.settings import Settings

ADMIN = "operator-token-for-tests-0123456789"
REQ = UNCONFIGURED_REQUIREMENTS
#: A well-formed request for a network nobody configured: verify answers isValid false without any chain work.
VERIFY_BODY = {
    "x402Version": 2,
    "paymentPayload": {"x402Version": 2, "accepted": REQ, "payload": {"signature": "0x00", "authorization": {}}},
    "paymentRequirements": REQ,
}


def op() -> dict[str, str]:
    """Operator headers."""
    return {"Authorization": f"Bearer {ADMIN}"}


def bearer(key: str) -> dict[str, str]:
    """Headers for an API key."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def psettings(settings: Settings, redis_url: str) -> Settings:
    """Keys required, operator token set, Redis shared."""
    return settings.with_(require_api_keys=True, admin_token=ADMIN, redis_url=redis_url, reconcile_interval=0)


@pytest.fixture
async def client(psettings: Settings, aiohttp_client: Any) -> Any:
    """A test client on the platform app."""
    return await aiohttp_client(create_app(psettings))


async def new_tenant(client: Any, name: str, tier: str = "free") -> str:
    """Create a tenant through the operator API; its id."""
    r = await client.post("/v1/tenants", json={"name": name, "tier": tier}, headers=op())
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


async def new_key(client: Any, tenant: str, scopes: list[str] | None = None, headers: Any = None) -> dict[str, Any]:
    """Create a key through the API; the response (with the one-time ``key``)."""
    body = {"scopes": scopes or ["verify", "settle", "admin"]}
    r = await client.post(f"/v1/tenants/{tenant}/keys", json=body, headers=headers or op())
    assert r.status == 201, await r.text()
    out: dict[str, Any] = await r.json()
    return out


#: The CSRF field of a dashboard form, and the session's token in a page.
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def sign_in(client: Any, key: str) -> str:
    """Sign in through the form (as a browser does); the session's CSRF token from the overview page."""
    page = await (await client.get("/dashboard/login")).text()
    login_csrf = CSRF_FIELD.search(page)
    assert login_csrf is not None
    r = await client.post(
        "/dashboard/login",
        data={"key": key, "csrf": login_csrf.group(1), "next": "/dashboard/overview"},
        allow_redirects=False,
    )
    assert r.status == 303, await r.text()
    assert r.headers["Location"] == "/dashboard/overview"
    cookie = r.cookies[COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert key not in cookie.value
    overview = await client.get("/dashboard/overview")
    assert overview.status == 200
    token = CSRF_META.search(await overview.text())
    assert token is not None
    return token.group(1)
