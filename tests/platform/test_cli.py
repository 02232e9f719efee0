"""``x402 tenants`` and ``x402 keys`` against DATABASE_URL; the printed key works on a server."""

from __future__ import annotations

import json
from typing import Any

from tests.platform.conftest import VERIFY_BODY, bearer
from tests.platform.test_audit import _x402
from x402.service.app import create_app
from x402.service.settings import Settings


async def test_tenants_and_keys_commands(database_url: str, psettings: Settings, aiohttp_client: Any) -> None:
    made = _x402(database_url, "tenants", "create", "--name", "cli-co", "--tier", "starter")
    assert made.returncode == 0, made.stderr
    tenant = json.loads(made.stdout)
    assert tenant["tier"] == "starter"
    moved = _x402(database_url, "tenants", "set-tier", tenant["id"], "pro")
    assert json.loads(moved.stdout)["tier"] == "pro"
    bad = _x402(database_url, "tenants", "set-tier", tenant["id"], "platinum")
    assert bad.returncode == 1
    assert "unknown_tier" in bad.stderr
    assert [t["name"] for t in json.loads(_x402(database_url, "tenants", "list").stdout)] == ["cli-co"]

    created = _x402(database_url, "keys", "create", "--tenant", tenant["id"], "--scopes", "verify", "--mode", "test")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("x402_test_")
    assert key["scopes"] == ["verify"]

    # a test-mode key works on a dev-mode server only
    client = await aiohttp_client(create_app(psettings))
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(key["key"]))
    assert (r.status, (await r.json())["code"]) == (401, "test_key_not_allowed")
    client = await aiohttp_client(create_app(psettings.with_(dev=True)))
    assert (await client.post("/verify", json=VERIFY_BODY, headers=bearer(key["key"]))).status == 200

    rotated = json.loads(_x402(database_url, "keys", "rotate", key["id"]).stdout)
    revoked = json.loads(_x402(database_url, "keys", "revoke", rotated["id"]).stdout)
    assert "revokedAt" in revoked
    listed = json.loads(_x402(database_url, "keys", "list", "--tenant", tenant["id"]).stdout)
    assert len(listed) == 2
    assert all("revokedAt" in k for k in listed)
    assert _x402(database_url, "audit", "verify").returncode == 0
