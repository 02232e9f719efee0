"""Migrations: idempotent, and safe when two processes run them at once."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from x402.service.storage.db import load_migrations, migrate


async def _schema(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'public' ORDER BY table_name, column_name"""
        )
        return [(r[0], r[1], r[2]) for r in rows]
    finally:
        await conn.close()


async def test_migrate_twice_in_a_row(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()
    assert first == [m.version for m in await asyncio.to_thread(load_migrations)]
    assert second == []
    assert versions == first
    tables = {t for t, _, _ in await _schema(empty_database_url)}
    assert {"settlements", "verified_transactions", "schema_migrations"} <= tables


async def test_migrate_from_two_processes_at_once(empty_database_url: str, database_url: str) -> None:
    env = dict(os.environ, DATABASE_URL=empty_database_url)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "x402.service.cli", "migrate", env=env, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    texts = sorted(o[0].decode() for o in outs)
    assert any("applied" in t for t in texts)
    conn = await asyncpg.connect(empty_database_url)
    try:
        n = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert n == len(await asyncio.to_thread(load_migrations))
    # same schema as a database migrated the ordinary way (the per-test template)
    assert await _schema(empty_database_url) == await _schema(database_url)
