"""Money read from ``numeric`` columns prints as plain digits on every connection the service opens.

asyncpg's binary decoder gives ``Decimal('1E+4')`` for ``10000::numeric``; a ``str`` or msgspec JSON of it is
``"1E+4"``. The service's pools and connections decode ``numeric`` from Postgres's text instead.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from x402.service.platform.lifecycle import _value
from x402.service.storage.db import connect, create_pool
from x402.service.storage.walls import create_walled_pool

QUERY = "SELECT 10000::numeric(78, 0), 1000000::numeric, sum(x) FROM (VALUES (5000::numeric), (5000)) t(x)"
PLAIN = ["10000", "1000000", "10000"]


async def test_every_service_connection_reads_numeric_as_written(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    walled = await create_walled_pool(database_url, min_size=1, max_size=1)
    conn = await connect(database_url)
    try:
        for source in (pool, walled, conn):
            row = await source.fetchrow(QUERY)
            assert row is not None
            assert [str(v) for v in row] == PLAIN
            assert msgspec.json.decode(msgspec.json.encode(list(row))) == PLAIN
        # parameters still go in as numbers
        assert await conn.fetchval("SELECT $1::numeric + 1", 10**30) == Decimal(10**30 + 1)
    finally:
        await conn.close()
        await walled.close()
        await pool.close()


def test_tenant_export_writes_plain_amounts() -> None:
    assert _value("amount", Decimal("1E+4"), "numeric") == "10000"
    assert _value("fee", Decimal("1.50"), "numeric") == "1.50"
