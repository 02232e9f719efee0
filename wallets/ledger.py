"""The budget ledger: reserve -> commit | release, each one transaction; caps count committed + reserved.

``reserve`` locks the wallet row (``SELECT ... FOR UPDATE``), so concurrent reservations of one wallet serialise
in every process; expired reservations are swept on that path and by a background task.

Lock order: every transaction that locks both takes the wallet row first, then its payment rows. ``commit`` (the
payer) and ``resolve`` (the reconciler, possibly in another process) meet on the same pending payment; in opposite
orders they deadlocked. A transaction that still loses a deadlock or a serialization check is run again from the
start (``retries`` times), since each one re-reads everything it decides on.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from wallets import errors, events
from wallets.audit import AuditSink, no_audit
from wallets.events import Conn
from wallets.policy import WINDOWS, Policy
from wallets.store import Wallet, pause_locked
from x402.errors import NotFound
from x402.logs import get_logger
from x402.wire.models import PaymentRequirements

SYSTEM = "system:auto-pause"
#: transactions that lose a deadlock or a serialization check and are worth running again
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

T = TypeVar("T")
log = get_logger("wallets.ledger")


@dataclass(frozen=True, slots=True)
class Usage:
    """Committed and reserved amounts: in total and per rolling window."""

    committed: int
    reserved: int
    windows: Mapping[str, int]
    #: the part of ``reserved`` whose payment went out and awaits its proof from the chain
    pending: int = 0

    @property
    def total(self) -> int:
        """Committed + reserved (what caps count)."""
        return self.committed + self.reserved


@dataclass(frozen=True, slots=True)
class Reservation:
    """Budget held for one payment attempt."""

    id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int


def budget_json(policy: Policy, usage: Usage) -> dict[str, Any]:
    """Remaining budget per limit (atomic units as strings; absent when unlimited)."""
    out: dict[str, Any] = {
        "spent": str(usage.committed),
        "reserved": str(usage.reserved),
        "pending": str(usage.pending),
    }
    if policy.total_budget is not None:
        out["total"] = {
            "cap": str(policy.total_budget),
            "used": str(usage.total),
            "remaining": str(max(0, policy.total_budget - usage.total)),
        }
    for name, _, cap in policy.caps():
        used = usage.windows.get(name, 0)
        out[name] = {"cap": str(cap), "used": str(used), "remaining": str(max(0, cap - used))}
    return out


async def sweep(conn: Conn, wallet_id: uuid.UUID | None = None) -> int:
    """Release reservations past their expiry (one wallet, or all); returns how many."""
    result = await conn.execute(
        """UPDATE wallet_payments SET status = 'released', reason = 'reservation_expired'
           WHERE status = 'reserved' AND expires_at <= now() AND ($1::uuid IS NULL OR wallet_id = $1)""",
        wallet_id,
    )
    return int(result.split()[-1])


async def use_approval(
    conn: Conn, wallet_id: uuid.UUID, approval_id: uuid.UUID, offer: PaymentRequirements, amount: int
) -> None:
    """Consume an approved approval for this offer (same payee, network, asset; amount within the approved one)."""
    row = await conn.fetchrow(
        "SELECT * FROM wallet_approvals WHERE id = $1 AND wallet_id = $2 FOR UPDATE", approval_id, wallet_id
    )
    if row is None:
        raise errors.ApprovalInvalid("no such approval for this wallet")
    if row["status"] != "approved":
        raise errors.ApprovalInvalid(f"the approval is {row['status']}", status=row["status"])
    if row["expires_at"] <= datetime.now(UTC):
        raise errors.ApprovalInvalid("the approval expired")
    same = (row["network"], row["asset"].lower(), row["pay_to"].lower()) == (
        offer.network,
        offer.asset.lower(),
        offer.pay_to.lower(),
    )
    if not same or amount > int(row["amount"]):
        raise errors.ApprovalInvalid("the approval was given for another payment")
    await conn.execute("UPDATE wallet_approvals SET status = 'used' WHERE id = $1", approval_id)


async def usage(conn: Conn, wallet_id: uuid.UUID) -> Usage:
    """Current usage of a wallet (expired reservations excluded)."""
    row = await conn.fetchrow(
        """SELECT
             COALESCE(SUM(amount) FILTER (WHERE status = 'committed'), 0) AS committed,
             COALESCE(SUM(amount) FILTER (WHERE status = 'pending'
                      OR (status = 'reserved' AND expires_at > now())), 0) AS reserved,
             COALESCE(SUM(amount) FILTER (WHERE status = 'pending'), 0) AS pending,
             COALESCE(SUM(amount) FILTER (WHERE created_at > now() - interval '1 day'
                      AND (status IN ('committed', 'pending') OR expires_at > now())), 0) AS daily,
             COALESCE(SUM(amount) FILTER (WHERE created_at > now() - interval '7 days'
                      AND (status IN ('committed', 'pending') OR expires_at > now())), 0) AS weekly,
             COALESCE(SUM(amount) FILTER (WHERE created_at > now() - interval '30 days'
                      AND (status IN ('committed', 'pending') OR expires_at > now())), 0) AS monthly
           FROM wallet_payments WHERE wallet_id = $1 AND status IN ('reserved', 'pending', 'committed')""",
        wallet_id,
    )
    assert row is not None
    return Usage(
        committed=int(row["committed"]),
        reserved=int(row["reserved"]),
        windows={name: int(row[name]) for name, _ in WINDOWS},
        pending=int(row["pending"]),
    )


class Ledger:
    """Reserve, commit and release payments of wallets; auto-pause and budget events happen in the same transaction."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditSink = no_audit, *, retries: int = 3) -> None:
        self.pool = pool
        self.audit = audit
        self.retries = retries

    async def _transaction(self, name: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction; again from the start (on a fresh transaction) when Postgres aborted it
        as a deadlock victim or a serialization failure, up to ``retries`` more times."""
        attempt = 0
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await body(conn)
            except RETRYABLE as exc:
                if attempt >= self.retries:
                    raise
                attempt += 1
                log.warning("ledger_transaction_retried", transaction=name, attempt=attempt, error=type(exc).__name__)
                await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311 (jitter, not a secret)

    async def budget(self, wallet: Wallet) -> dict[str, Any]:
        """The remaining budget view of a wallet (sweeps its expired reservations first)."""
        async with self.pool.acquire() as conn:
            await sweep(conn, wallet.id)
            return budget_json(wallet.policy, await usage(conn, wallet.id))

    async def find(self, wallet_id: uuid.UUID, idempotency_key: str) -> asyncpg.Record | None:
        """The payment made under this Idempotency-Key, if any."""
        return await self.pool.fetchrow(
            "SELECT * FROM wallet_payments WHERE wallet_id = $1 AND idempotency_key = $2", wallet_id, idempotency_key
        )

    async def forget_key(self, payment_id: uuid.UUID) -> None:
        """Free the Idempotency-Key of a released payment (nothing was paid under it), so a retry may pay."""
        await self.pool.execute(
            "UPDATE wallet_payments SET idempotency_key = NULL WHERE id = $1 AND status = 'released'", payment_id
        )

    async def reserve(
        self,
        wallet_id: uuid.UUID,
        offer: PaymentRequirements,
        amount: int,
        *,
        url: str,
        idempotency_key: str | None = None,
        approval_id: uuid.UUID | None = None,
        hold_seconds: float = 60.0,
    ) -> Reservation:
        """Hold ``amount`` for one payment; raises the policy error that refuses it."""
        payment_id = uuid.uuid4()

        async def body(conn: Conn) -> errors.WalletPaused | None:
            row = await conn.fetchrow("SELECT * FROM wallets WHERE id = $1 FOR UPDATE", wallet_id)
            if row is None:
                raise NotFound("no such wallet", code="wallet_not_found")
            wallet = Wallet.from_row(row)
            if wallet.status != "active":
                raise errors.WalletPaused(f"the wallet is paused ({wallet.paused_reason})", reason=wallet.paused_reason)
            policy = wallet.policy
            policy.check_active()
            await sweep(conn, wallet_id)
            velocity = policy.auto_pause.velocity_per_minute
            recent = 0
            if velocity is not None:
                recent = await conn.fetchval(
                    """SELECT count(*) FROM wallet_payments WHERE wallet_id = $1
                       AND created_at > now() - interval '60 seconds'
                       AND status IN ('reserved', 'pending', 'committed')""",
                    wallet_id,
                )
            if velocity is not None and recent >= velocity:
                reason = f"velocity: more than {velocity} payments in 60 s"
                # the pause commits with this transaction; the refusal is raised after it
                await pause_locked(conn, self.audit, wallet_id, reason, SYSTEM)
                return errors.WalletPaused(f"the wallet paused itself ({reason})", reason=reason)
            await self._check_and_insert(
                conn, wallet, payment_id, offer, amount, url, idempotency_key, approval_id, hold_seconds
            )
            return None

        paused = await self._transaction("reserve", body)
        if paused is not None:
            raise paused
        return Reservation(payment_id, wallet_id, amount)

    async def _check_and_insert(
        self,
        conn: Conn,
        wallet: Wallet,
        payment_id: uuid.UUID,
        offer: PaymentRequirements,
        amount: int,
        url: str,
        idempotency_key: str | None,
        approval_id: uuid.UUID | None,
        hold_seconds: float,
    ) -> None:
        policy = wallet.policy
        used = await usage(conn, wallet.id)
        if policy.total_budget is not None and used.total + amount > policy.total_budget:
            raise errors.BudgetExceeded(
                f"paying {amount} would exceed the total budget",
                remaining=str(max(0, policy.total_budget - used.total)),
                amount=str(amount),
            )
        for name, _, cap in policy.caps():
            if used.windows[name] + amount > cap:
                raise errors.WindowCapExceeded(
                    f"paying {amount} would exceed the {name} cap",
                    window=name,
                    remaining=str(max(0, cap - used.windows[name])),
                    amount=str(amount),
                )
        if approval_id is not None:
            await use_approval(conn, wallet.id, approval_id, offer, amount)
        try:
            await conn.execute(
                """INSERT INTO wallet_payments (id, wallet_id, status, amount, network, asset, pay_to, url,
                                                idempotency_key, approval_id, expires_at)
                   VALUES ($1, $2, 'reserved', $3, $4, $5, $6, $7, $8, $9, now() + $10::interval)""",
                payment_id,
                wallet.id,
                amount,
                offer.network,
                offer.asset,
                offer.pay_to,
                url[:2000],
                idempotency_key,
                approval_id,
                timedelta(seconds=hold_seconds),
            )
        except asyncpg.UniqueViolationError:
            raise errors.PaymentInProgress("a payment with this Idempotency-Key already exists") from None

    async def commit(
        self, res: Reservation, *, tx: str | None, result: Mapping[str, Any], amount: int | None = None
    ) -> Usage:
        """Mark the payment paid (even when its hold had expired: the money moved); reset the failure streak.

        ``amount``: what was actually charged when it is less than the hold (an ``upto`` payment holds its signed
        maximum while pending and counts the settled amount once committed); never raises the held amount.
        """

        async def body(conn: Conn) -> Usage:
            row = await conn.fetchrow("SELECT * FROM wallets WHERE id = $1 FOR UPDATE", res.wallet_id)
            assert row is not None
            wallet = Wallet.from_row(row)
            before = await conn.fetchval("SELECT status FROM wallet_payments WHERE id = $1 FOR UPDATE", res.id)
            if before == "committed":  # the reconciler got there first: it already counted and announced it
                await conn.execute(
                    "UPDATE wallet_payments SET result = $2::jsonb WHERE id = $1", res.id, json.dumps(dict(result))
                )
                return await usage(conn, res.wallet_id)
            await conn.execute(
                """UPDATE wallet_payments SET status = 'committed', tx = $2, result = $3::jsonb, settled_at = now(),
                          amount = LEAST(amount, COALESCE($4::numeric, amount))
                   WHERE id = $1""",
                res.id,
                tx,
                json.dumps(dict(result)),
                amount,
            )
            await conn.execute("UPDATE wallets SET consecutive_failures = 0 WHERE id = $1", res.wallet_id)
            used = await usage(conn, res.wallet_id)
            await events.emit(
                conn,
                tenant_id=wallet.tenant_id,
                wallet_id=wallet.id,
                kind="payment.made",
                data={
                    k: result[k]
                    for k in ("paymentId", "amount", "network", "asset", "payTo", "transaction", "url")
                    if k in result
                },
            )
            await self._thresholds(conn, wallet, used)
            return used

        return await self._transaction("commit", body)

    async def mark_sent(self, res: Reservation, *, payer: str, proof: Mapping[str, Any], purchase: bytes) -> bool:
        """Reserved -> pending just before the payment header goes out (False when the hold is gone)."""
        result = await self.pool.execute(
            """UPDATE wallet_payments SET status = 'pending', payer = $2, proof = $3::jsonb, purchase = $4,
                                          sent_at = now()
               WHERE id = $1 AND status = 'reserved'""",
            res.id,
            payer,
            json.dumps(dict(proof)),
            purchase,
        )
        return result.endswith(" 1")

    async def note_upstream(self, payment_id: uuid.UUID, note: Mapping[str, Any]) -> None:
        """Merge ``note`` into a committed payment's stored upstream answer (a streamed answer's outcome: bytes
        sent, complete or cut, and a small complete body for replays under its Idempotency-Key)."""
        await self.pool.execute(
            """UPDATE wallet_payments
                  SET result = jsonb_set(result, '{upstream}', coalesce(result->'upstream', '{}'::jsonb) || $2::jsonb)
                WHERE id = $1 AND status = 'committed' AND result IS NOT NULL""",
            payment_id,
            json.dumps(dict(note)),
        )

    async def remember(self, payment_id: uuid.UUID, result: Mapping[str, Any]) -> None:
        """Store the answer given for a still pending payment (what a retry with its key is shown)."""
        await self.pool.execute(
            "UPDATE wallet_payments SET result = $2::jsonb WHERE id = $1 AND status = 'pending'",
            payment_id,
            json.dumps(dict(result)),
        )
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT p.*, w.tenant_id FROM wallet_payments p JOIN wallets w ON w.id = p.wallet_id WHERE p.id = $1",
                payment_id,
            )
            if row is not None and row["status"] == "pending":
                await events.emit(
                    conn,
                    tenant_id=row["tenant_id"],
                    wallet_id=row["wallet_id"],
                    kind="payment.pending",
                    data=_event_data(row),
                    dedupe=f"payment.pending:{payment_id}",
                )

    async def pending_purchase(self, wallet_id: uuid.UUID, purchase: bytes, in_flight: float) -> asyncpg.Record | None:
        """A pending payment of this wallet for the same purchase whose answer was ambiguous (or that has been in
        flight longer than ``in_flight`` seconds: its process died); concurrent purchases still in flight are not."""
        return await self.pool.fetchrow(
            """SELECT * FROM wallet_payments WHERE wallet_id = $1 AND purchase = $2 AND status = 'pending'
                 AND (result IS NOT NULL OR sent_at < now() - $3::interval)
               ORDER BY created_at LIMIT 1""",
            wallet_id,
            purchase,
            timedelta(seconds=in_flight),
        )

    async def paid_before(self, wallet_id: uuid.UUID, purchase: bytes) -> list[str]:
        """The networks this wallet paid this purchase on (settled payments), newest first: it may sign in there."""
        rows = await self.pool.fetch(
            """SELECT network FROM wallet_payments WHERE wallet_id = $1 AND purchase = $2 AND status = 'committed'
               GROUP BY network ORDER BY max(created_at) DESC""",
            wallet_id,
            purchase,
        )
        return [r["network"] for r in rows]

    async def due_pending(self, limit: int = 50) -> list[asyncpg.Record]:
        """Pending payments, least recently checked first (marked checked now, so other processes move on)."""
        return await self.pool.fetch(
            """UPDATE wallet_payments SET checked_at = now()
               WHERE id IN (SELECT id FROM wallet_payments WHERE status = 'pending'
                            ORDER BY checked_at NULLS FIRST LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING *""",
            limit,
        )

    async def resolve(self, payment_id: uuid.UUID, *, settled: bool, tx: str | None, reason: str) -> bool:
        """Pending -> committed (the chain shows it moved) or released (it never can); False if not pending."""
        wallet_id = await self.pool.fetchval("SELECT wallet_id FROM wallet_payments WHERE id = $1", payment_id)
        if wallet_id is None:
            return False

        async def body(conn: Conn) -> bool:
            # the wallet row first, then the payment's (the order ``commit`` and ``reserve`` take)
            wallet_row = await conn.fetchrow("SELECT * FROM wallets WHERE id = $1 FOR UPDATE", wallet_id)
            assert wallet_row is not None
            wallet = Wallet.from_row(wallet_row)
            row = await conn.fetchrow("SELECT * FROM wallet_payments WHERE id = $1 FOR UPDATE", payment_id)
            if row is None or row["status"] != "pending":
                return False
            status = "committed" if settled else "released"
            resolved = await conn.fetchrow(
                """UPDATE wallet_payments SET status = $2, tx = COALESCE($3, tx), reason = $4, resolved_at = now(),
                          settled_at = CASE WHEN $2 = 'committed' THEN now() END
                   WHERE id = $1 RETURNING *""",
                payment_id,
                status,
                tx,
                reason[:500],
            )
            assert resolved is not None
            data = {**_event_data(resolved), "resolution": status, "reason": reason[:500]}
            await events.emit(conn, tenant_id=wallet.tenant_id, wallet_id=wallet.id, kind="payment.resolved", data=data)
            if settled:
                await conn.execute("UPDATE wallets SET consecutive_failures = 0 WHERE id = $1", wallet.id)
                await events.emit(
                    conn,
                    tenant_id=wallet.tenant_id,
                    wallet_id=wallet.id,
                    kind="payment.made",
                    data=_event_data(resolved),
                )
                await self._thresholds(conn, wallet, await usage(conn, wallet.id))
            else:
                await self._failed(conn, wallet.id)
            return True

        return await self._transaction("resolve", body)

    async def _thresholds(self, conn: Conn, wallet: Wallet, used: Usage) -> None:
        """Low-budget events at 80/90/100 % of each limit, and auto-pause at the configured share."""
        policy = wallet.policy
        limits: list[tuple[str, int, int, str]] = []
        if policy.total_budget is not None:
            limits.append(("total", policy.total_budget, used.total, f"total:{policy.total_budget}"))
        now = int(time.time())
        for name, seconds, cap in policy.caps():
            # rolling windows re-arm once per window length
            limits.append((name, cap, used.windows[name], f"{name}:{cap}:{now // seconds}"))
        share = policy.auto_pause.cap_share
        for name, cap, amount, tag in limits:
            for pct in events.crossed(amount, cap):
                await events.emit(
                    conn,
                    tenant_id=wallet.tenant_id,
                    wallet_id=wallet.id,
                    kind="wallet.low_budget",
                    data={"limit": name, "percent": pct, "cap": str(cap), "used": str(amount)},
                    dedupe=f"low_budget:{wallet.id}:{tag}:{pct}",
                )
            if share is not None and cap > 0 and amount >= cap * share:
                await pause_locked(conn, self.audit, wallet.id, f"cap_share: {name} at {amount * 100 // cap}%", SYSTEM)

    async def release(self, res: Reservation, *, reason: str, failure: bool) -> None:
        """Give the hold back; a failed payment extends the failure streak (and may pause the wallet)."""

        async def body(conn: Conn) -> None:
            if failure:  # the streak updates the wallet row: lock it before the payment's
                await conn.execute("SELECT 1 FROM wallets WHERE id = $1 FOR UPDATE", res.wallet_id)
            await conn.execute(
                "UPDATE wallet_payments SET status = 'released', reason = $2 WHERE id = $1 AND status = 'reserved'",
                res.id,
                reason[:500],
            )
            if failure:
                await self._failed(conn, res.wallet_id)

        await self._transaction("release", body)

    async def _failed(self, conn: Conn, wallet_id: uuid.UUID) -> None:
        """Extend the failure streak; pause the wallet when it reaches the policy's limit."""
        row = await conn.fetchrow(
            """UPDATE wallets SET consecutive_failures = consecutive_failures + 1 WHERE id = $1
               RETURNING consecutive_failures, policy""",
            wallet_id,
        )
        assert row is not None
        limit = Policy.from_json(json.loads(row["policy"])).auto_pause.consecutive_failures
        if limit is not None and row["consecutive_failures"] >= limit:
            await pause_locked(
                conn,
                self.audit,
                wallet_id,
                f"failures: {row['consecutive_failures']} failed payments in a row",
                SYSTEM,
            )

    async def payments(self, wallet_id: uuid.UUID, limit: int = 100) -> list[dict[str, Any]]:
        """The wallet's latest payments."""
        rows = await self.pool.fetch(
            "SELECT * FROM wallet_payments WHERE wallet_id = $1 ORDER BY created_at DESC, id LIMIT $2", wallet_id, limit
        )
        return [payment_json(r) for r in rows]


def payment_json(row: asyncpg.Record) -> dict[str, Any]:
    """A ledger row as the API shows it."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "status": row["status"],
        **events.purchase_json(row),
        "createdAt": row["created_at"].astimezone(UTC).isoformat(),
    }
    for col, key in (
        ("tx", "transaction"),
        ("reason", "reason"),
        ("idempotency_key", "idempotencyKey"),
        ("payer", "payer"),
    ):
        if row[col] is not None:
            out[key] = row[col]
    for col, key in (("settled_at", "settledAt"), ("sent_at", "sentAt"), ("resolved_at", "resolvedAt")):
        if row[col] is not None:
            out[key] = row[col].astimezone(UTC).isoformat()
    out.update(proof_json(row["proof"]))
    return out


def proof_json(proof: Any) -> dict[str, Any]:
    """The public part of a sent payment: what identifies it on-chain, never its signature."""
    doc = json.loads(proof) if isinstance(proof, str) else proof
    if not isinstance(doc, dict):
        return {}
    out: dict[str, Any] = {}
    payload = doc.get("payload")
    auth = payload.get("authorization") if isinstance(payload, dict) else None
    if isinstance(auth, dict):
        out["authorization"] = {k: auth[k] for k in ("from", "to", "value", "validBefore", "nonce") if k in auth}
    return out


def _event_data(row: asyncpg.Record) -> dict[str, Any]:
    """What a payment event says about the payment."""
    out: dict[str, Any] = {
        "paymentId": str(row["id"]),
        **events.purchase_json(row),
    }
    if row["tx"] is not None:
        out["transaction"] = row["tx"]
    if row["payer"] is not None:
        out["payer"] = row["payer"]
    return out


def now_utc() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)
