"""The audit log: every write is chained; ``x402 audit verify`` passes untouched, names the row after tampering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.platform.conftest import new_key, new_tenant, op


def _x402(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "x402.service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _tamper(database_url: str, sql: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # the append-only trigger stops ordinary writers; someone with table ownership can still switch it off
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite")
        await conn.execute(sql)
    finally:
        await conn.close()


async def _writes(client: Any) -> str:
    tenant = await new_tenant(client, "acme")
    key = await new_key(client, tenant)
    await client.post(f"/v1/keys/{key['id']}/rotate", json={}, headers=op())
    await client.patch(f"/v1/tenants/{tenant}", json={"tier": "pro"}, headers=op())
    return tenant


async def test_chain_verifies_and_export(client: Any, database_url: str, tmp_path: Path) -> None:
    tenant = await _writes(client)
    ok = _x402(database_url, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "intact: 5 rows" in ok.stdout

    out = tmp_path / "audit.jsonl"
    exp = _x402(database_url, "audit", "export", "--out", str(out))
    assert exp.returncode == 0, exp.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["action"] for r in lines] == [
        "tenant.create",
        "key.create",
        "key.create",
        "key.rotate",
        "tenant.set_tier",
    ]
    assert lines[0]["actor"] == "operator"
    assert lines[0]["objectId"] == tenant
    assert lines[1]["prevHash"] == lines[0]["hash"]
    assert lines[4]["before"]["tier"] == "free"
    assert lines[4]["after"]["tier"] == "pro"
    assert all(r["requestId"] for r in lines)
    assert "hash" not in json.dumps([r["after"] for r in lines])


async def test_ordinary_updates_are_refused(client: Any, database_url: str) -> None:
    await _writes(client)
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    finally:
        await conn.close()


async def test_verify_fails_after_an_update(client: Any, database_url: str) -> None:
    await _writes(client)
    await _tamper(
        database_url, "UPDATE audit_log SET after = jsonb_set(after, '{tier}', '\"enterprise\"') WHERE id = 5"
    )
    bad = _x402(database_url, "audit", "verify")
    assert bad.returncode == 1
    assert "row 5" in bad.stderr
    assert "edited" in bad.stderr


async def test_verify_fails_after_a_deletion(client: Any, database_url: str) -> None:
    await _writes(client)
    await _tamper(database_url, "DELETE FROM audit_log WHERE id = 2")
    bad = _x402(database_url, "audit", "verify")
    assert bad.returncode == 1
    assert "row 3" in bad.stderr
    assert "removed" in bad.stderr
