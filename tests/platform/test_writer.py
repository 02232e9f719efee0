"""The batched writer: ``write`` returns after commit, ``submit`` is flushed by ``close``."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from x402.service.platform.writer import PaymentRecord, PaymentWriter


def _rec(i: int) -> PaymentRecord:
    return PaymentRecord(kind="verify", status="valid", network="eip155:8453", amount=i, tenant_id=uuid.uuid4())


async def test_write_is_committed_when_it_returns(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        writer = PaymentWriter(pool, interval=0.05)
        recs = [_rec(i) for i in range(1200)]
        await asyncio.gather(*(writer.write(r) for r in recs))
        # committed: visible to another connection right away
        assert await pool.fetchval("SELECT count(*) FROM payments") == 1200
        more = [_rec(i) for i in range(777)]
        for r in more:
            writer.submit(r)
        await writer.close()
        assert await pool.fetchval("SELECT count(*) FROM payments") == 1977
        assert writer.written == 1977
        assert writer.dropped == 0
    finally:
        await pool.close()


async def test_a_record_written_twice_is_kept_once(database_url: str) -> None:
    """A batch retried after a commit whose acknowledgement was lost writes nothing twice (ON CONFLICT)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = PaymentWriter(pool)
        rec = _rec(1)
        await writer.write(rec)
        await writer.write(rec)  # same primary key
        await writer.close()
        assert await pool.fetchval("SELECT count(*) FROM payments WHERE id=$1", rec.id) == 1
    finally:
        await pool.close()


async def test_sigkill_loses_no_acknowledged_record(database_url: str) -> None:
    """bench/ingest.py's child prints an id only after its batch committed; after SIGKILL all printed ids exist."""
    import signal
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        "child",
        "--url",
        database_url,
        "--concurrency",
        "500",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: list[uuid.UUID] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            acked.append(uuid.UUID(line.decode().strip()))

    reader = asyncio.create_task(read())
    # kill it mid-stream: once it has acknowledged a good number (its start-up is slow on a busy box)
    for _ in range(400):
        if len(acked) > 1000:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    await reader
    assert len(acked) > 100
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchval("SELECT count(*) FROM payments WHERE id = ANY($1::uuid[])", acked)
    finally:
        await conn.close()
    assert found == len(acked)
