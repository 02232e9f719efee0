"""Platform test helpers: an app with API keys required, the operator token, tenants and keys made through the API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.wire import UNCONFIGURED_REQUIREMENTS
from x402.service.app import create_app
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
