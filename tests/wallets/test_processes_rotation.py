"""Across two ``x402 serve`` processes the budget still holds; master key rotation keeps every wallet usable."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from chains.evm.devchain import DevChain
from tests.harness.evm import mint, networks_env, token_balance
from tests.harness.paychain import EvmChain
from tests.harness.procs import x402_serve
from tests.harness.services import free_port
from tests.wallets.conftest import ADMIN, MASTER_KEY, PRICE, TENANT_SCOPES, Upstream, new_wallet, pay


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """On anvil: two ``x402 serve`` processes share it (the fake chain lives in one process)."""
    return EvmChain(devchain)


def _env(devchain: DevChain, database_url: str, keys_on: bool = False, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "X402_NETWORKS": networks_env(devchain),
        "X402_MASTER_KEY": MASTER_KEY,
        "X402_ALLOW_PRIVATE_OUTBOUND": "true",
        "X402_REQUIRE_API_KEYS": "true" if keys_on else "false",
        "X402_ADMIN_TOKEN": ADMIN,
        **extra,
    }


async def _tenant_key(session: aiohttp.ClientSession, base: str) -> str:
    """A tenant key with the wallets scope, made through the operator API of one process."""
    op = {"Authorization": f"Bearer {ADMIN}"}
    async with session.post(f"{base}/v1/tenants", json={"name": "two-processes"}, headers=op) as r:
        tenant = (await r.json())["id"]
    async with session.post(f"{base}/v1/tenants/{tenant}/keys", json={"scopes": TENANT_SCOPES}, headers=op) as r:
        assert r.status == 201, await r.text()
        key: str = (await r.json())["key"]
        return key


async def _pay(session: aiohttp.ClientSession, base: str, wallet_id: str, url: str) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{base}/v1/wallets/{wallet_id}/pay", json={"url": url}) as r:
        return r.status, json.loads(await r.read())


@pytest.mark.slow
@pytest.mark.parametrize("keys_on", [False, True], ids=["keys-off", "keys-on"])
async def test_two_processes_share_one_budget(
    upstream: Upstream, devchain: DevChain, database_url: str, keys_on: bool
) -> None:
    env = _env(devchain, database_url, keys_on)
    async with (
        x402_serve(env=env, port=free_port()) as one,
        x402_serve(env=env, port=free_port()) as two,
        aiohttp.ClientSession() as session,
    ):
        if keys_on:
            session.headers["Authorization"] = f"Bearer {await _tenant_key(session, one.base_url)}"
        async with session.post(f"{one.base_url}/v1/wallets", json={"policy": {"totalBudget": str(PRICE * 10)}}) as r:
            assert r.status == 201, await r.text()
            wallet = await r.json()
        await mint(devchain, wallet["addresses"]["evm"], 10**9)
        before = await token_balance(devchain, upstream.pay_to)
        bases = [one.base_url, two.base_url]
        results = await asyncio.gather(
            *(_pay(session, bases[i % 2], wallet["id"], upstream.paid_url) for i in range(200))
        )
    codes = [doc.get("code") if status != 200 else "paid" for status, doc in results]
    assert codes.count("paid") == 10, codes
    assert codes.count("budget_exceeded") == 190, codes
    assert await token_balance(devchain, upstream.pay_to) == before + 10 * PRICE


@pytest.mark.allow_blocking
async def test_rotate_master_key_keeps_wallets_usable(
    wallet_service: Any, upstream: Upstream, devchain: DevChain, chain: EvmChain, database_url: str, tmp_path: Path
) -> None:
    client = await wallet_service()
    wallets = [await new_wallet(client, chain, {}) for _ in range(3)]
    new_key = secrets.token_hex(32)
    key_file = tmp_path / "master.keys"
    key_file.write_text(new_key + "\n")
    env = {**os.environ, "DATABASE_URL": database_url, "X402_MASTER_KEY": MASTER_KEY}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "x402.service.cli", "wallets", "rotate-master-key", "--new-key-file", str(key_file)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    # without keys the 3 wallets are nobody's (3 keys sealed by the master key); with keys they are one tenant's,
    # sealed by its data key, and that one data key is what the master key seals
    sealed = 1 if "Authorization" in client.session.headers else 3
    assert f"re-wrapped {sealed} keys" in proc.stdout, proc.stdout
    assert MASTER_KEY not in proc.stdout + proc.stderr
    assert new_key not in proc.stdout + proc.stderr
    # the file is now the keyring: the new key first, the old one after it
    assert key_file.read_text().split() == [new_key, MASTER_KEY]
    conn = await asyncpg.connect(database_url)
    try:
        ids = {r["key_id"] for r in await conn.fetch("SELECT key_id FROM wallet_keys")}
    finally:
        await conn.close()
    assert len(ids) == 1
    # a process holding only the new key pays from every wallet
    rotated = await wallet_service(master_key=new_key)
    for w in wallets:
        status, doc = await pay(rotated, w["id"], upstream.paid_url)
        assert status == 200, doc
    # a process with an unrelated key cannot open them (and says so without leaking anything)
    stale = await wallet_service(master_key=secrets.token_hex(32))
    status, doc = await pay(stale, wallets[0]["id"], upstream.paid_url)
    assert status == 500, doc
    assert doc["code"] == "key_custody_error", doc
    assert new_key not in json.dumps(doc)
