"""The settlement journal and replay ledger in Postgres (table ``settlements``, migration 0001).

A payment's row is claimed (unique replay key) before anything is broadcast, so across every process sharing
the database a payment is sent at most once; the row then records submitted(tx) -> confirmed | failed | pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chains.base import PreparedSettlement, ReplayKey

OPEN_STATUSES = ("claimed", "submitted", "pending")
Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One settlement as recorded."""

    id: int
    network: str
    asset: str
    payer: str
    nonce: str
    payload_hash: bytes
    status: str
    pay_to: str
    amount: int
    tx_id: str | None
    raw_tx: bytes | None
    signer: str | None
    signer_nonce: int | None
    valid_until: int | None
    error_reason: str | None
    error_message: str | None
    x402_version: int
    payload: dict[str, Any]
    requirements: dict[str, Any]
    attempts: int
    #: True once a settle answered ``success: true`` for it (one plain settle does; later ones get a duplicate)
    success_delivered: bool = False
    id_tenant: str | None = None
    payment_identifier: str | None = None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> JournalRow:
        """Build from a ``SELECT *`` record."""
        return cls(
            id=r["id"],
            network=r["network"],
            asset=r["asset"],
            payer=r["payer"],
            nonce=r["nonce"],
            payload_hash=bytes(r["payload_hash"]),
            status=r["status"],
            pay_to=r["pay_to"],
            amount=int(r["amount"]),
            tx_id=r["tx_id"],
            raw_tx=bytes(r["raw_tx"]) if r["raw_tx"] is not None else None,
            signer=r["signer"],
            signer_nonce=r["signer_nonce"],
            valid_until=r["valid_until"],
            error_reason=r["error_reason"],
            error_message=r["error_message"],
            x402_version=r["x402_version"],
            payload=json.loads(r["payload"]),
            requirements=json.loads(r["requirements"]),
            attempts=r["attempts"],
            success_delivered=bool(r.get("success_delivered", False)),
            id_tenant=r.get("id_tenant"),
            payment_identifier=r.get("payment_identifier"),
        )


def payload_hash(x402_version: int, payload: Any, requirements: Any) -> bytes:
    """A stable hash of what was paid: the same payment retried hashes the same whatever its key order."""
    doc = json.dumps([x402_version, payload, requirements], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).digest()


class IdentifierTaken(Exception):
    """Another live settlement already holds this payment identifier (tenant + id)."""


class Journal:
    """Reads and writes settlement rows; every method is one short transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._signer_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def find(self, key: ReplayKey) -> JournalRow | None:
        """The row for a replay key, if any."""
        r = await self.pool.fetchrow(
            "SELECT * FROM settlements WHERE network=$1 AND asset=$2 AND payer=$3 AND nonce=$4",
            key.network,
            key.asset,
            key.payer,
            key.nonce,
        )
        return JournalRow.from_record(r) if r is not None else None

    async def get(self, row_id: int) -> JournalRow | None:
        """The row with this id."""
        r = await self.pool.fetchrow("SELECT * FROM settlements WHERE id=$1", row_id)
        return JournalRow.from_record(r) if r is not None else None

    async def claim(
        self,
        key: ReplayKey,
        *,
        digest: bytes,
        pay_to: str,
        amount: int,
        x402_version: int,
        payload: Any,
        requirements: Any,
        identifier: tuple[str, str] | None = None,
    ) -> int | None:
        """Claim the replay key; the row id, or None when another request already holds it.

        With ``identifier`` (tenant, payment-identifier id) raises IdentifierTaken when a live row holds the id.
        """
        try:
            row_id: int | None = await self.pool.fetchval(
                """INSERT INTO settlements (network, asset, payer, nonce, payload_hash, status, pay_to, amount,
                                            x402_version, payload, requirements, id_tenant, payment_identifier)
                   VALUES ($1, $2, $3, $4, $5, 'claimed', $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12)
                   ON CONFLICT ON CONSTRAINT settlements_replay_key DO NOTHING
                   RETURNING id""",
                key.network,
                key.asset,
                key.payer,
                key.nonce,
                digest,
                pay_to,
                amount,
                x402_version,
                json.dumps(payload),
                json.dumps(requirements),
                identifier[0] if identifier else None,
                identifier[1] if identifier else None,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "settlements_payment_identifier":
                raise IdentifierTaken(identifier[1] if identifier else "") from None
            raise
        return row_id

    async def find_by_identifier(self, tenant: str, identifier: str) -> JournalRow | None:
        """The live (not failed) settlement made under a payment identifier, if any."""
        r = await self.pool.fetchrow(
            """SELECT * FROM settlements WHERE id_tenant=$1 AND payment_identifier=$2 AND status <> 'failed'""",
            tenant,
            identifier,
        )
        return JournalRow.from_record(r) if r is not None else None

    async def deliver(self, row_id: int) -> bool:
        """Take the row's one success answer: True for exactly one caller once it is confirmed."""
        got = await self.pool.fetchval(
            """UPDATE settlements SET success_delivered=true, updated_at=now()
               WHERE id=$1 AND status='confirmed' AND NOT success_delivered RETURNING id""",
            row_id,
        )
        return got is not None

    async def confirm_and_deliver(self, row_id: int) -> bool:
        """Mark confirmed and take its success answer in one statement (False: another settle already took it)."""
        got = await self.pool.fetchval(
            """UPDATE settlements SET status='confirmed', error_reason=NULL, error_message=NULL,
                                      success_delivered=true, updated_at=now()
               WHERE id=$1 AND NOT success_delivered RETURNING id""",
            row_id,
        )
        return got is not None

    @contextlib.asynccontextmanager
    async def signer_slot(self, network: str, signer: str) -> AsyncIterator[tuple[Conn, int | None]]:
        """Hold the signer's lock (in-process and across processes) and yield (conn, next nonce per journal).

        The caller prepares and records its transaction inside the block, so nonces never collide.
        """
        lock = self._signer_locks.setdefault((network, signer), asyncio.Lock())
        async with lock, self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 402))", f"{network}|{signer}")
            last: int | None = await conn.fetchval(
                "SELECT max(signer_nonce) FROM settlements WHERE network=$1 AND signer=$2", network, signer
            )
            yield conn, (None if last is None else last + 1)

    @staticmethod
    async def mark_submitted(conn: Conn, row_id: int, prepared: PreparedSettlement) -> None:
        """Record the signed transaction before it is broadcast (crash-safe: the reconciler can resend it)."""
        await conn.execute(
            """UPDATE settlements SET status='submitted', tx_id=$2, raw_tx=$3, signer=$4, signer_nonce=$5,
                      valid_until=$6, attempts=attempts+1, updated_at=now()
               WHERE id=$1""",
            row_id,
            prepared.tx_id,
            prepared.raw,
            prepared.signer,
            prepared.signer_nonce,
            prepared.valid_until,
        )

    async def mark(self, row_id: int, status: str, reason: str | None = None, message: str | None = None) -> None:
        """Move a row to a new status (never away from confirmed)."""
        await self.pool.execute(
            """UPDATE settlements SET status=$2, error_reason=$3, error_message=$4, updated_at=now()
               WHERE id=$1 AND status <> 'confirmed'""",
            row_id,
            status,
            reason,
            message[:500] if message else None,
        )

    async def wait_settled(self, row_id: int, timeout: float) -> JournalRow | None:
        """Poll a row held by another request until it leaves ``claimed``/``submitted`` or time runs out."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            row = await self.get(row_id)
            if row is None or row.status in ("confirmed", "failed", "pending") or time.monotonic() >= deadline:
                return row
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def open_rows(self, *, claimed_older_than: float, limit: int = 100) -> list[JournalRow]:
        """Rows the reconciler should look at: submitted/pending, and claimed ones left behind."""
        rows = await self.pool.fetch(
            """SELECT * FROM settlements
               WHERE status IN ('submitted', 'pending')
                  OR (status = 'claimed' AND updated_at < now() - make_interval(secs => $1))
               ORDER BY id LIMIT $2""",
            claimed_older_than,
            limit,
        )
        return [JournalRow.from_record(r) for r in rows]
