"""API keys: format, authentication by Bearer and X-API-Key, scopes, rotation, revocation, nothing stored in clear."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg

from tests.platform.conftest import VERIFY_BODY, bearer, new_key, new_tenant, op
from x402.service.platform import keys


def test_key_format_round_trip() -> None:
    new = keys.mint("live")
    assert new.plaintext.startswith(f"x402_live_{new.prefix}_")
    assert 8 <= len(new.prefix) <= 12
    assert len(new.secret) >= 32
    parsed = keys.parse(new.plaintext)
    assert parsed is not None
    assert parsed.prefix == new.prefix
    assert parsed.secret == new.secret
    assert keys.matches(parsed, new.hash)
    assert keys.parse("x402_prod_abcdefgh_" + "a" * 40) is None
    assert keys.parse("sk_live_whatever") is None


async def test_verify_needs_a_key_with_the_scope(client: Any) -> None:
    r = await client.post("/verify", json=VERIFY_BODY)
    assert r.status == 401
    assert (await r.json())["code"] == "api_key_required"

    tenant = await new_tenant(client, "acme")
    settle_only = (await new_key(client, tenant, ["settle"]))["key"]
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(settle_only))
    assert r.status == 403
    assert (await r.json())["code"] == "insufficient_scope"

    verify_key = (await new_key(client, tenant, ["verify"]))["key"]
    for headers in (bearer(verify_key), {"X-API-Key": verify_key}):
        r = await client.post("/verify", json=VERIFY_BODY, headers=headers)
        assert r.status == 200, await r.text()
        assert (await r.json())["isValid"] is False

    wrong = verify_key[:-4] + ("AAAA" if not verify_key.endswith("AAAA") else "BBBB")
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(wrong))
    assert r.status == 401
    assert (await r.json())["code"] == "invalid_api_key"
    r = await client.post("/verify", json=VERIFY_BODY, headers={"Authorization": "Basic abc"})
    assert r.status == 401

    # public endpoints stay open, whatever credential comes along
    for path in ("/healthz", "/supported", "/.well-known/x402", "/openapi.json", "/docs"):
        r = await client.get(path, headers=bearer(wrong))
        assert r.status == 200, path


async def test_rotate_and_revoke(client: Any) -> None:
    tenant = await new_tenant(client, "acme")
    first = await new_key(client, tenant)
    assert (await client.post("/verify", json=VERIFY_BODY, headers=bearer(first["key"]))).status == 200

    r = await client.post(f"/v1/keys/{first['id']}/rotate", json={}, headers=bearer(first["key"]))
    assert r.status == 201, await r.text()
    second = await r.json()
    assert second["scopes"] == first["scopes"]
    assert second["key"] != first["key"]
    assert second["replaced"]["id"] == first["id"]
    assert "revokedAt" in second["replaced"]
    r = await client.post("/verify", json=VERIFY_BODY, headers=bearer(first["key"]))
    assert r.status == 401
    assert (await r.json())["code"] == "api_key_revoked"
    assert (await client.post("/verify", json=VERIFY_BODY, headers=bearer(second["key"]))).status == 200

    r = await client.delete(f"/v1/keys/{second['id']}", headers=op())
    assert r.status == 200
    assert "revokedAt" in await r.json()
    assert (await client.post("/verify", json=VERIFY_BODY, headers=bearer(second["key"]))).status == 401

    listed = await (await client.get(f"/v1/tenants/{tenant}/keys", headers=op())).json()
    assert {k["id"] for k in listed["data"]} == {first["id"], second["id"]}
    assert all("key" not in k and "hash" not in k for k in listed["data"])


async def test_database_holds_no_key_in_clear(client: Any, database_url: str) -> None:
    tenant = await new_tenant(client, "acme")
    made = [await new_key(client, tenant) for _ in range(3)]
    r = await client.post(f"/v1/keys/{made[0]['id']}/rotate", json={}, headers=op())
    made.append(await r.json())
    r = await client.post(
        f"/v1/tenants/{tenant}/keys", json={"scopes": ["verify"]}, headers={**op(), "Idempotency-Key": "k1"}
    )
    made.append(await r.json())
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT prefix, hash FROM api_keys")
        dump = ""
        for table in ("api_keys", "audit_log", "idempotency_keys", "tenants", "events"):
            for row in await conn.fetch(f"SELECT * FROM {table}"):
                dump += repr(dict(row))
                dump += "".join(bytes(v).decode("latin-1") for v in row.values() if isinstance(v, bytes))
    finally:
        await conn.close()
    stored = {r["prefix"]: bytes(r["hash"]) for r in rows}
    for m in made:
        secret = m["key"].split("_", 3)[3]
        assert secret not in dump
        assert m["key"] not in dump
        assert stored[m["prefix"]] == hashlib.sha256(secret.encode()).digest()
        # the hash itself is not copied into the audit log either
        assert stored[m["prefix"]].hex() not in dump
