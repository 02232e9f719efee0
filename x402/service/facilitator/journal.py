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
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chains.base import PreparedSettlement, ReplayKey
from x402.errors import SignerBusy
from x402.service.events.outbox import Event, insert_events

OPEN_STATUSES = ("claimed", "submitted", "pending")
_MARK = """UPDATE settlements SET status=$2, error_reason=$3, error_message=$4, updated_at=now()
           WHERE id=$1 AND status <> 'confirmed' AND (status <> 'failed' OR $2 IN ('failed', 'confirmed'))"""
_AGES = "EXTRACT(EPOCH FROM now() - created_at) AS age, EXTRACT(EPOCH FROM now() - sent_at) AS sent_age"
#: Where a journal write runs: the lane's transaction, or the pool (committed at once, before a broadcast).
Conn = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool


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
    replaced_tx_ids: tuple[str, ...] = ()
    #: the API key's tenant of the settle that claimed it: the tenant its later events (reconciled) go to
    event_tenant: uuid.UUID | None = None
    age: float = 0.0  # seconds since the row was created
    sent_age: float | None = None  # seconds since its current transaction was handed to the node
    extensions: dict[str, Any] = field(default_factory=dict)  # payload extensions a settlement needs (EIP-2612)

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
            replaced_tx_ids=tuple(r["replaced_tx_ids"] or ()),
            event_tenant=r.get("event_tenant"),
            age=float(r.get("age") or 0.0),
            sent_age=float(r["sent_age"]) if r.get("sent_age") is not None else None,
            extensions=json.loads(r["extensions"]) if r.get("extensions") else {},
        )


@dataclass(frozen=True, slots=True)
class Held:
    """A nonce of a signer lane held by an open settlement or an open fill."""

    kind: str  # "settlement" | "fill"
    id: int
    nonce: int
    tx_id: str
    raw: bytes
    replaced_tx_ids: tuple[str, ...]
    valid_until: int | None
    sent_age: float


@dataclass(frozen=True, slots=True)
class Fill:
    """An open zero-value self-transfer that consumes a nonce."""

    id: int
    network: str
    signer: str
    nonce: int
    settlement_id: int | None
    tx_id: str
    raw: bytes
    replaced_tx_ids: tuple[str, ...]


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
        event_tenant: str | None = None,
        extensions: Any = None,
    ) -> int | None:
        """Claim the replay key; the row id, or None when another request already holds it.

        With ``identifier`` (tenant, payment-identifier id) raises IdentifierTaken when a live row holds the id.
        """
        try:
            row_id: int | None = await self.pool.fetchval(
                """INSERT INTO settlements (network, asset, payer, nonce, payload_hash, status, pay_to, amount,
                                            x402_version, payload, requirements, id_tenant, payment_identifier,
                                            event_tenant, extensions)
                   VALUES ($1, $2, $3, $4, $5, 'claimed', $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12, $13::uuid,
                           $14::jsonb)
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
                event_tenant,
                json.dumps(extensions or {}),
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
    async def signer_slot(self, network: str, signer: str, *, wait: float | None = None) -> AsyncIterator[Conn]:
        """Hold the signer lane's lock (in-process and across processes) and yield its transaction's connection.

        The caller picks, prepares and records its transaction inside the block, so nonces never collide. With
        ``wait``, waiting longer than that many seconds for the lane (this process's queue, then another
        process's hold) raises ``SignerBusy`` instead: under more settlements than a signer can take, the queue
        stays bounded and callers get a prompt 503 rather than a wait past their own timeout.
        """
        lock = self._signer_locks.setdefault((network, signer), asyncio.Lock())
        busy = f"the settlement lane of signer {signer} stayed busy for {wait} s"
        if wait is None:
            await lock.acquire()
        else:
            started = time.monotonic()
            try:
                await asyncio.wait_for(lock.acquire(), wait)
            except TimeoutError:
                raise SignerBusy(busy, network=network) from None
        try:
            async with self.pool.acquire() as conn:
                # BEGIN and the lock travel in one message (one round trip less on every settlement); the lane key
                # is configuration (CAIP-2 network, signer address), quoted as a literal all the same
                key = f"{network}|{signer}".replace("'", "''")
                take = f"SELECT pg_advisory_xact_lock(hashtextextended('{key}', 402))"
                if wait is None:
                    sql = f"BEGIN; {take}"
                else:
                    left = max(1, int((wait - (time.monotonic() - started)) * 1000))
                    # the lane's own statements are not bounded: the timeout is reset once the lock is held
                    sql = f"BEGIN; SET LOCAL lock_timeout = {left}; {take}; SET LOCAL lock_timeout = 0"
                try:
                    await conn.execute(sql)
                except asyncpg.LockNotAvailableError:
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                    raise SignerBusy(busy, network=network) from None
                try:
                    yield conn
                except BaseException:
                    # a broken or cancelled link is rolled back by the pool's reset on release instead
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
        finally:
            lock.release()

    @staticmethod
    async def next_nonce(conn: Conn, network: str, signer: str) -> int | None:
        """Highest journalled nonce of a lane + 1, failed rows left out (their nonce may never have been used)."""
        last: int | None = await conn.fetchval(
            "SELECT max(signer_nonce) FROM settlements WHERE network=$1 AND signer=$2 AND status <> 'failed'",
            network,
            signer,
        )
        return None if last is None else last + 1

    @staticmethod
    async def mark_submitted(conn: Conn, row_id: int, prepared: PreparedSettlement) -> None:
        """Record the signed transaction before it is broadcast (crash-safe: the reconciler can resend it)."""
        await conn.execute(
            """UPDATE settlements SET status='submitted', tx_id=$2, raw_tx=$3, signer=$4, signer_nonce=$5,
                      valid_until=$6, attempts=attempts+1, sent_at=now(), updated_at=now(),
                      -- an earlier signed version stays on record: the chain may still take it
                      replaced_tx_ids = CASE WHEN tx_id IS NULL OR tx_id = $2 THEN replaced_tx_ids
                                             ELSE replaced_tx_ids || tx_id END
               WHERE id=$1""",
            row_id,
            prepared.tx_id,
            prepared.raw,
            prepared.signer,
            prepared.signer_nonce,
            prepared.valid_until,
        )

    @staticmethod
    async def record_replacement(conn: Conn, row_id: int, prepared: PreparedSettlement) -> None:
        """Record a gas-bumped replacement (same nonce) before it is broadcast; the old hash stays on record."""
        await conn.execute(
            """UPDATE settlements SET replaced_tx_ids = replaced_tx_ids || tx_id, tx_id=$2, raw_tx=$3,
                      attempts=attempts+1, sent_at=now(), updated_at=now()
               WHERE id=$1 AND tx_id IS NOT NULL AND tx_id <> $2""",
            row_id,
            prepared.tx_id,
            prepared.raw,
        )

    async def adopt_tx(self, row_id: int, tx_id: str) -> None:
        """One of the row's earlier (replaced) transactions is the one the chain took: make it the row's tx."""
        await self.pool.execute(
            """UPDATE settlements SET replaced_tx_ids = array_remove(replaced_tx_ids, $2) || tx_id, tx_id=$2,
                      updated_at=now()
               WHERE id=$1 AND tx_id <> $2""",
            row_id,
            tx_id,
        )

    @staticmethod
    async def held(conn: Conn, network: str, signer: str, from_nonce: int) -> dict[int, Held]:
        """Nonces >= ``from_nonce`` of a lane held by open settlements and open fills (a fill wins a tie)."""
        rows = await conn.fetch(
            """SELECT 'settlement' AS kind, id, signer_nonce AS nonce, tx_id, raw_tx, replaced_tx_ids, valid_until,
                      EXTRACT(EPOCH FROM now() - COALESCE(sent_at, updated_at)) AS sent_age
                 FROM settlements
                WHERE network=$1 AND signer=$2 AND signer_nonce >= $3 AND status IN ('submitted', 'pending')
                  AND raw_tx IS NOT NULL
               UNION ALL
               SELECT 'fill', id, nonce, tx_id, raw_tx, replaced_tx_ids, NULL, EXTRACT(EPOCH FROM now() - sent_at)
                 FROM nonce_fills WHERE network=$1 AND signer=$2 AND nonce >= $3 AND status='submitted'
                ORDER BY kind""",
            network,
            signer,
            from_nonce,
        )
        out: dict[int, Held] = {}
        for r in rows:  # "fill" sorts before "settlement": setdefault keeps the fill
            out.setdefault(
                int(r["nonce"]),
                Held(
                    kind=r["kind"],
                    id=r["id"],
                    nonce=int(r["nonce"]),
                    tx_id=r["tx_id"],
                    raw=bytes(r["raw_tx"]),
                    replaced_tx_ids=tuple(r["replaced_tx_ids"] or ()),
                    valid_until=r["valid_until"],
                    sent_age=float(r["sent_age"] or 0.0),
                ),
            )
        return out

    @staticmethod
    async def release(conn: Conn, row_id: int, reason: str, message: str) -> None:
        """Close an open settlement whose transaction can never succeed; its nonce goes back to the lane."""
        await conn.execute(
            """UPDATE settlements SET status='failed', error_reason=$2, error_message=$3, updated_at=now()
               WHERE id=$1 AND status IN ('submitted', 'pending')""",
            row_id,
            reason,
            message[:500],
        )

    async def forget_unsent(self, row_id: int) -> bool:
        """Delete a claim whose transaction never reached any node (so the payment may be settled later)."""
        done = await self.pool.execute(
            "DELETE FROM settlements WHERE id=$1 AND status IN ('claimed', 'submitted')", row_id
        )
        return bool(done.endswith(" 1"))

    @staticmethod
    async def add_fill(
        conn: Conn, network: str, signer: str, nonce: int, settlement_id: int | None, prepared: PreparedSettlement
    ) -> int:
        """Record a nonce fill before it is broadcast."""
        fill_id: int = await conn.fetchval(
            """INSERT INTO nonce_fills (network, signer, nonce, settlement_id, status, tx_id, raw_tx)
               VALUES ($1, $2, $3, $4, 'submitted', $5, $6) RETURNING id""",
            network,
            signer,
            nonce,
            settlement_id,
            prepared.tx_id,
            prepared.raw,
        )
        return fill_id

    @staticmethod
    async def replace_fill(conn: Conn, fill_id: int, prepared: PreparedSettlement) -> None:
        """Record a gas-bumped fill before it is broadcast."""
        await conn.execute(
            """UPDATE nonce_fills SET replaced_tx_ids = replaced_tx_ids || tx_id, tx_id=$2, raw_tx=$3, sent_at=now(),
                      updated_at=now() WHERE id=$1""",
            fill_id,
            prepared.tx_id,
            prepared.raw,
        )

    @staticmethod
    async def open_fills(conn: Conn, network: str, signer: str) -> list[Fill]:
        """The lane's fills not yet seen consumed."""
        rows = await conn.fetch(
            "SELECT * FROM nonce_fills WHERE network=$1 AND signer=$2 AND status='submitted' ORDER BY nonce",
            network,
            signer,
        )
        return [
            Fill(
                id=r["id"],
                network=r["network"],
                signer=r["signer"],
                nonce=int(r["nonce"]),
                settlement_id=r["settlement_id"],
                tx_id=r["tx_id"],
                raw=bytes(r["raw_tx"]),
                replaced_tx_ids=tuple(r["replaced_tx_ids"] or ()),
            )
            for r in rows
        ]

    @staticmethod
    async def close_fill(conn: Conn, fill_id: int, status: str, tx_id: str | None = None) -> None:
        """A fill's nonce is consumed: by the fill itself (confirmed) or by another transaction (consumed)."""
        await conn.execute(
            "UPDATE nonce_fills SET status=$2, tx_id=COALESCE($3, tx_id), updated_at=now() WHERE id=$1",
            fill_id,
            status,
            tx_id,
        )

    async def mark(
        self,
        row_id: int,
        status: str,
        reason: str | None = None,
        message: str | None = None,
        *,
        events: Callable[[JournalRow], Sequence[Event]] | None = None,
    ) -> None:
        """Move a row to a new status (never away from confirmed; a failed row can only become confirmed).

        ``events``: provider events of the change, written in its transaction (only when the row did change).
        """
        # a failed row's nonce may already belong to another settlement: it must not become open again
        args = (row_id, status, reason, message[:500] if message else None)
        if events is None:
            await self.pool.execute(_MARK, *args)
            return
        async with self.pool.acquire() as conn, conn.transaction():
            r = await conn.fetchrow(_MARK + " RETURNING *", *args)
            if r is not None:  # the row changed
                await insert_events(conn, events(JournalRow.from_record(r)))

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
            f"""SELECT *, {_AGES} FROM settlements
               WHERE status IN ('submitted', 'pending')
                  OR (status = 'claimed' AND updated_at < now() - make_interval(secs => $1))
               ORDER BY id LIMIT $2""",
            claimed_older_than,
            limit,
        )
        return [JournalRow.from_record(r) for r in rows]
