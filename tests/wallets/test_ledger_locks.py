"""The ledger's lock order, provoked deterministically on two connections.

The payer's ``commit`` and the reconciler's ``resolve`` (often in another process) meet on one pending payment.
A third connection holds the wallet row while ``commit`` queues for it first and ``resolve`` second; then it lets
go. With ``resolve`` locking the payment row before the wallet row (the old order) the two deadlocked.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from wallets.ledger import Ledger, Reservation
from x402.wire.models import PaymentRequirements

OFFER = PaymentRequirements(
    scheme="exact",
    network="eip155:31337",
    amount="1000",
    asset="0x" + "a" * 40,
    pay_to="0x" + "b" * 40,
    max_timeout_seconds=60,
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    try:
        yield pool
    finally:
        await pool.close()


async def _pending(pool: asyncpg.Pool, ledger: Ledger) -> Reservation:
    """A wallet with one payment sent and awaiting its outcome."""
    wallet_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO wallets (id, name, addresses, policy) VALUES ($1, 'locks', '{}'::jsonb, '{}'::jsonb)", wallet_id
    )
    res = await ledger.reserve(wallet_id, OFFER, 1000, url="https://seller.test/paid")
    assert await ledger.mark_sent(res, payer="0x" + "c" * 40, proof={"payload": {}}, purchase=b"p")
    return res


async def _waiting(pool: asyncpg.Pool, count: int) -> None:
    """Until ``count`` backends of this database wait on a lock."""
    for _ in range(500):
        n = await pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        )
        if n >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} lock waiters never appeared")


async def _made(pool: asyncpg.Pool, payment_id: uuid.UUID) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM provider_events WHERE type = 'payment.made' AND data->>'paymentId' = $1",
            str(payment_id),
        )
    )


async def test_commit_and_resolve_of_one_payment_do_not_deadlock(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, retries=0)  # no second chance: a deadlock would surface
    res = await _pending(pool, ledger)
    gate = await pool.acquire()
    try:
        tx = gate.transaction()
        await tx.start()
        await gate.execute("SELECT 1 FROM wallets WHERE id = $1 FOR UPDATE", res.wallet_id)
        commit = asyncio.create_task(ledger.commit(res, tx="0xabc", result={"paymentId": str(res.id)}))
        await _waiting(pool, 1)
        resolve = asyncio.create_task(ledger.resolve(res.id, settled=True, tx="0xabc", reason="settled on-chain"))
        await _waiting(pool, 2)
        await tx.rollback()
    finally:
        await pool.release(gate)
    used = await asyncio.wait_for(commit, 10)
    # the payer committed first; the reconciler then finds the payment no longer pending
    assert await asyncio.wait_for(resolve, 10) is False
    assert used.committed == 1000
    row = await pool.fetchrow("SELECT status, tx FROM wallet_payments WHERE id = $1", res.id)
    assert row is not None
    assert (row["status"], row["tx"]) == ("committed", "0xabc")
    assert await _made(pool, res.id) == 1


async def test_a_deadlock_victim_is_run_again(pool: asyncpg.Pool) -> None:
    """A lock cycle with a foreign transaction: ``commit`` is chosen as the victim and succeeds on its retry."""
    ledger = Ledger(pool)
    res = await _pending(pool, ledger)
    other = await pool.acquire()
    try:
        tx = other.transaction()
        await tx.start()
        # the foreign transaction never volunteers as the victim, so ``commit``'s deadlock check finds the cycle
        await other.execute("SET LOCAL deadlock_timeout = '60s'")
        await other.execute("SELECT 1 FROM wallet_payments WHERE id = $1 FOR UPDATE", res.id)
        commit = asyncio.create_task(ledger.commit(res, tx="0xdef", result={"paymentId": str(res.id)}))
        await _waiting(pool, 1)  # commit holds the wallet row and waits for the payment's
        await asyncio.wait_for(other.execute("SELECT 1 FROM wallets WHERE id = $1 FOR UPDATE", res.wallet_id), 10)
        await other.execute(
            "UPDATE wallet_payments SET result = $2::jsonb WHERE id = $1", res.id, json.dumps({"seen": True})
        )
        await tx.commit()
    finally:
        await pool.release(other)
    used = await asyncio.wait_for(commit, 10)
    assert used.committed == 1000
    assert await pool.fetchval("SELECT status FROM wallet_payments WHERE id = $1", res.id) == "committed"
    assert await _made(pool, res.id) == 1
