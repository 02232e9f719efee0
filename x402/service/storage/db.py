"""Postgres via asyncpg: pool creation and numbered SQL migrations applied under an advisory lock."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.errors import ConfigError, DatabaseUnavailable
from x402.logs import get_logger

log = get_logger("x402.db")

#: Arbitrary constant: every process migrating this database serialises on it.
MIGRATION_LOCK_ID = 0x78343032  # "x402"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: Tables of the current schema with a tenant_id column that miss RLS, FORCE RLS or the tenant policies. From
#: pg_catalog, not information_schema, which hides tables the querying role holds no privilege on.
UNWALLED = """
SELECT k.relname FROM pg_class k
JOIN pg_attribute a ON a.attrelid = k.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE k.relnamespace = current_schema()::regnamespace AND k.relkind IN ('r', 'p')
  AND NOT (k.relrowsecurity AND k.relforcerowsecurity
           AND (SELECT count(*) FROM pg_policy p WHERE p.polrelid = k.oid
                AND p.polname IN ('tenant_read', 'tenant_insert', 'tenant_update', 'tenant_delete')) = 4)
ORDER BY 1
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped in ``x402/service/storage/migrations``, in order."""
    out = []
    for entry in resources.files("x402.service.storage").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    out.sort(key=lambda mg: mg.version)
    versions = [mg.version for mg in out]
    if len(set(versions)) != len(versions):
        raise ConfigError("two migrations share a version number")
    return out


async def migrate(conn: asyncpg.Connection | PoolConnectionProxy) -> list[int]:
    """Apply pending migrations; safe when several processes run it at once. Returns versions applied."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for mg in await asyncio.to_thread(load_migrations):
            if mg.version in done:
                continue
            async with conn.transaction():
                await conn.execute(mg.sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", mg.version, mg.name)
            applied_now.append(mg.version)
            log.info("migration_applied", version=mg.version, name=mg.name)
        if await conn.fetchval("SELECT to_regprocedure('x402_tenant_walls()') IS NOT NULL") and (
            applied_now or await conn.fetch(UNWALLED)
        ):
            # a table added later with a tenant_id column gets the same wall (migration 0013); cheap when none is
            walled = await conn.fetchval("SELECT x402_tenant_walls()")
            log.info("tenant_walls_applied", tables=walled)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def plain_numeric(conn: asyncpg.Connection) -> None:
    """Decode ``numeric`` from Postgres's own text, so amounts print as written (``10000``).

    asyncpg's binary decoder strips trailing zero digit groups into the exponent: ``10000::numeric`` arrives as
    ``Decimal('1E+4')``, whose ``str`` (and msgspec's JSON) is ``"1E+4"``. Every pool and connection of the
    service sets this codec (``create_pool``, ``connect``, the RLS pool, the operator CLI).
    """
    await conn.set_type_codec("numeric", schema="pg_catalog", encoder=str, decoder=Decimal, format="text")


async def connect(url: str, *, timeout: float = 10.0) -> asyncpg.Connection:
    """One connection; a clear 503-class error when Postgres is not there."""
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
        await plain_numeric(conn)
        return conn
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to Postgres: {type(exc).__name__}") from exc


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """A connection pool; raises DatabaseUnavailable when Postgres is not reachable."""
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, command_timeout=30, init=plain_numeric
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to Postgres: {type(exc).__name__}") from exc
    assert pool is not None
    return pool


async def migrate_url(url: str) -> list[int]:
    """Connect, migrate, disconnect."""
    conn = await connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
