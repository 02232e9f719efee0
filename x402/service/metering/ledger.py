"""The prepaid-credit ledger: double-entry, append-only, audited; burns exact under concurrency.

A movement locks the customer's ``credit_accounts`` row with one conditional ``UPDATE`` (a burn only when the
balance covers it, unless the plan allows going negative), then appends its two legs and an audit entry in the
same transaction. A movement with a ``reference`` happens once: a repeat answers the first one's result.

Credits granted or bought with an expiry form a lot (``credit_lots``). Every debit takes from the lots soonest to
expire first (credits without an expiry last), under the same account lock, so what a lot still holds at its
date is exactly its unspent remainder; ``expire_due`` turns that remainder into an ``expiry`` entry, once.

A paywalled request's burn (``charge``) is a hold until the answer goes out: its ``credit_charges`` row is ``held``
until the paywall captures it (``capture_charge``, the handler answered) or refunds it (``refund_charge``, the
handler failed); ``release_due`` refunds every charge still held after the hold timeout (the process died between
the burn and the answer), once, through ``refund_charge``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.errors import Conflict, InsufficientCredits, NotFound, ValidationFailed
from x402.logs import get_logger
from x402.service.metering.ingest import MAX_VALUE
from x402.service.metering.plans import tenant_is
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry
from x402.service.storage.scope import system_scope

Conn = asyncpg.Connection | PoolConnectionProxy
log = get_logger("x402.metering.ledger")

KINDS: Final = ("grant", "purchase", "burn", "expiry", "refund", "burn_refund")
#: The counter account of each kind (the other leg of the double entry).
COUNTER: Final = {
    "grant": "issued:grant",
    "purchase": "issued:purchase",
    "burn": "consumed:burn",
    "expiry": "expired",
    "refund": "refunded",
    "burn_refund": "consumed:burn",  # undoes a burn: both legs of the burn, reversed
}
#: Kinds that add to the customer's balance (the others take from it).
CREDITING: Final = frozenset({"grant", "purchase", "burn_refund"})
#: Kinds whose credits may expire (``expires_at``); their lot's expiry is referenced ``<kind>:<txn>``.
EXPIRING: Final = ("grant", "purchase")
#: Who writes the expiry pass's entries (in the audit log and the ledger).
EXPIRY_ACTOR: Final = "system:credit-expiry"
#: Who refunds the charges still held after the hold timeout (in the audit log and the ledger).
HOLD_ACTOR: Final = "system:credit-holds"
#: A charge's states: burned and not yet answered, answered (final), given back.
CHARGE_STATES: Final = ("held", "captured", "refunded")
REFERENCE_PATTERN: Final = r"^[A-Za-z0-9_.:@/-]{1,200}$"


@dataclass(frozen=True, slots=True)
class Movement:
    """One ledger transaction asked for."""

    kind: str
    credits: int
    reference: str | None = None
    meter: str | None = None
    units: int | None = None
    expires_at: datetime | None = None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def entry_json(row: asyncpg.Record) -> dict[str, Any]:
    """The customer's leg of a movement, as the API shows it."""
    return {
        "txn": str(row["txn"]),
        "seq": row["seq"],
        "kind": row["kind"],
        "credits": row["amount"],
        "balance": row["balance"],
        "counterAccount": COUNTER[row["kind"]],
        "meter": row["meter"],
        "units": row["units"],
        "reference": row["reference"],
        "expiresAt": None if row["expires_at"] is None else _iso(row["expires_at"]),
        "createdAt": _iso(row["created_at"]),
    }


async def _existing(conn: Conn, tenant_id: uuid.UUID | None, customer: str, m: Movement) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT * FROM credit_entries WHERE {tenant_is("tenant_id")} AND kind = $2 AND reference = $3
            AND account = $4""",
        tenant_id,
        m.kind,
        m.reference,
        f"customer:{customer}",
    )


async def burn_rate(conn: Conn, tenant_id: uuid.UUID | None, customer: str, meter: str) -> tuple[int, int, bool]:
    """(credits, per units, allow negative) of the customer's plan for ``meter``; 1 credit per unit by default."""
    row = await conn.fetchrow(
        f"""SELECT p.burn_rates -> $3 AS rate, p.allow_negative FROM usage_customers c
            JOIN usage_plans p ON {tenant_is("p.tenant_id")} AND p.key = c.plan
            WHERE {tenant_is("c.tenant_id")} AND c.id = $2""",
        tenant_id,
        customer,
        meter,
    )
    if row is None:
        return 1, 1, False
    rate = json.loads(row["rate"]) if isinstance(row["rate"], str) else row["rate"]
    if not rate:
        return 1, 1, bool(row["allow_negative"])
    return int(rate["credits"]), int(rate["per"]), bool(row["allow_negative"])


async def move(
    conn: Conn,
    tenant_id: uuid.UUID | None,
    customer: str,
    m: Movement,
    *,
    actor: str,
    request_id: str | None = None,
    allow_negative: bool = False,
    lot: uuid.UUID | None = None,
) -> tuple[dict[str, Any], bool]:
    """Apply one movement (its own transaction); (the customer's entry, whether it is new). 409 when a burn or
    expiry would take the balance below zero and the plan does not allow it. A debit takes from the lots soonest
    to expire first; with ``lot`` (the expiry pass) it takes from that lot only and closes it."""
    if m.kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {list(KINDS)}", code="invalid_credit_entry")
    if m.expires_at is not None and m.kind not in EXPIRING:
        raise ValidationFailed("only a grant or a purchase may expire", code="invalid_credit_entry")
    if not 0 < m.credits <= MAX_VALUE and not (m.kind == "burn" and m.credits == 0):
        raise ValidationFailed(f"credits must be an integer from 1 to {MAX_VALUE}", code="invalid_credit_entry")
    delta = m.credits if m.kind in CREDITING else -m.credits
    async with conn.transaction():
        if m.reference is not None:
            # one movement per reference: the lock makes a concurrent repeat wait for the first and then see it
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"credits|{tenant_id}|{m.kind}|{m.reference}",
            )
            done = await _existing(conn, tenant_id, customer, m)
            if done is not None:
                return entry_json(done), False
        await conn.execute(
            """INSERT INTO credit_accounts (tenant_id, customer) VALUES ($1, $2)
               ON CONFLICT ON CONSTRAINT credit_accounts_customer DO NOTHING""",
            tenant_id,
            customer,
        )
        balance = await conn.fetchval(
            f"""UPDATE credit_accounts SET balance = balance + $3, updated_at = now()
                WHERE {tenant_is("tenant_id")} AND customer = $2 AND (balance + $3 >= 0 OR $3 >= 0 OR $4)
                RETURNING balance""",
            tenant_id,
            customer,
            delta,
            allow_negative,
        )
        if balance is None:
            have = await conn.fetchval(
                f"SELECT balance FROM credit_accounts WHERE {tenant_is('tenant_id')} AND customer = $2",
                tenant_id,
                customer,
            )
            raise InsufficientCredits(balance=int(have or 0), needed=m.credits)
        txn = uuid.uuid4()
        rows = await conn.fetch(
            """INSERT INTO credit_entries (txn, tenant_id, customer, kind, account, amount, balance, meter, units,
                                           reference, actor, expires_at)
               SELECT $1, $2, $3, $4, a, d, b, $7, $8, $9, $10, e
               FROM unnest($5::text[], $6::bigint[], $11::bigint[], $12::timestamptz[]) AS u(a, d, b, e)
               RETURNING *""",
            txn,
            tenant_id,
            customer,
            m.kind,
            [f"customer:{customer}", COUNTER[m.kind]],
            [delta, -delta],
            m.meter,
            m.units,
            m.reference,
            actor,
            [balance, None],
            [m.expires_at, None],
        )
        await _lots(conn, tenant_id, customer, m, txn, delta, balance, lot)
        mine = next(r for r in rows if r["account"] == f"customer:{customer}")
        out = entry_json(mine)
        await audit.append(
            conn,
            AuditEntry(actor, f"credits.{m.kind}", "credit_account", f"{tenant_id}:{customer}", None, out, request_id),
        )
    return out, True


async def _lots(
    conn: Conn,
    tenant_id: uuid.UUID | None,
    customer: str,
    m: Movement,
    txn: uuid.UUID,
    delta: int,
    balance: int,
    lot: uuid.UUID | None,
) -> None:
    """Keep the customer's lots in step with movement ``txn`` (the caller holds the account's row lock)."""
    if m.expires_at is not None:
        # credits that pay back a negative balance are spent already: the lot holds what the balance gained
        await conn.execute(
            """INSERT INTO credit_lots (tenant_id, txn, customer, kind, credits, remaining, expires_at)
               VALUES ($1, $2, $3, $4, $5::bigint, greatest(least($5::bigint, $6::bigint), 0), $7)""",
            tenant_id,
            txn,
            customer,
            m.kind,
            m.credits,
            balance,
            m.expires_at,
        )
    elif lot is not None:
        await conn.execute(
            f"""WITH closed AS (
                    UPDATE credit_lots SET remaining = 0, expiries = expiries + 1
                    WHERE {tenant_is("tenant_id")} AND txn = $2 RETURNING txn)
                INSERT INTO credit_lot_takes (tenant_id, txn, lot, credits) SELECT $1, $3, txn, $4 FROM closed""",
            tenant_id,
            lot,
            txn,
            -delta,
        )
    elif delta < 0:
        # soonest expiry first: each lot gives what the lots before it did not cover
        await conn.execute(
            f"""WITH live AS (
                    SELECT txn, remaining, sum(remaining) OVER (ORDER BY expires_at, txn) - remaining AS before
                    FROM credit_lots WHERE {tenant_is("tenant_id")} AND customer = $2 AND remaining > 0),
                took AS (
                    UPDATE credit_lots l SET remaining = l.remaining - t.take
                    FROM (SELECT txn, least(remaining, $3 - before) AS take FROM live WHERE before < $3) AS t
                    WHERE l.txn = t.txn RETURNING l.txn, t.take)
                INSERT INTO credit_lot_takes (tenant_id, txn, lot, credits) SELECT $1, $4, txn, take FROM took""",
            tenant_id,
            customer,
            -delta,
            txn,
        )
    elif m.kind == "burn_refund":
        # a burn given back returns its credits to the lots it took them from
        await conn.execute(
            f"""UPDATE credit_lots l SET remaining = l.remaining + t.credits
                FROM credit_lot_takes t JOIN credit_entries e ON e.txn = t.txn
                WHERE {tenant_is("e.tenant_id")} AND e.kind = 'burn' AND e.reference = $3
                  AND e.account = 'customer:' || $2 AND l.txn = t.lot""",
            tenant_id,
            customer,
            m.reference,
        )


async def balance(conn: Conn, tenant_id: uuid.UUID | None, customer: str) -> dict[str, Any]:
    """The customer's balance, and the credits that expire next (404 when the customer never had a movement)."""
    row = await conn.fetchrow(
        f"SELECT balance, updated_at FROM credit_accounts WHERE {tenant_is('tenant_id')} AND customer = $2",
        tenant_id,
        customer,
    )
    if row is None:
        raise NotFound("no credit account for this customer", code="customer_not_found")
    nxt = await conn.fetchrow(
        f"""SELECT expires_at, sum(remaining) AS credits FROM credit_lots
            WHERE {tenant_is("tenant_id")} AND customer = $2 AND remaining > 0
            GROUP BY expires_at ORDER BY expires_at LIMIT 1""",
        tenant_id,
        customer,
    )
    return {
        "customer": customer,
        "balance": row["balance"],
        "nextExpiry": None if nxt is None else {"credits": int(nxt["credits"]), "expiresAt": _iso(nxt["expires_at"])},
        "updatedAt": _iso(row["updated_at"]),
    }


async def expire_lot(conn: Conn, tenant_id: uuid.UUID | None, customer: str, txn: uuid.UUID) -> dict[str, Any] | None:
    """Expire what the customer's lot ``txn`` still holds if it is past its date: an ``expiry`` entry referenced
    ``<kind>:<txn>`` through ``move``; None when there is nothing (left) to expire."""
    async with conn.transaction():
        # the account row first, as every movement takes it: a concurrent burn or pass waits, and the lot read
        # next is final (an expiry never takes more than the balance holds, so never below zero)
        have = await conn.fetchval(
            f"SELECT balance FROM credit_accounts WHERE {tenant_is('tenant_id')} AND customer = $2 FOR UPDATE",
            tenant_id,
            customer,
        )
        lot = await conn.fetchrow(
            f"""SELECT kind, remaining, expiries FROM credit_lots
                WHERE {tenant_is("tenant_id")} AND txn = $2 AND expires_at <= now() AND remaining > 0""",
            tenant_id,
            txn,
        )
        if lot is None:
            return None  # another pass expired it, or burns spent it
        credits = min(int(lot["remaining"]), max(int(have or 0), 0))
        reference = f"{lot['kind']}:{txn}" + (f"/{lot['expiries'] + 1}" if lot["expiries"] else "")
        if credits == 0:
            await conn.execute(
                f"UPDATE credit_lots SET remaining = 0 WHERE {tenant_is('tenant_id')} AND txn = $2",
                tenant_id,
                txn,
            )
            return None
        out, new = await move(
            conn, tenant_id, customer, Movement("expiry", credits, reference), actor=EXPIRY_ACTOR, lot=txn
        )
        return out if new else None


async def expire_due(pool: asyncpg.Pool, *, batch: int = 500) -> int:
    """Expire every lot past its date, of every tenant; how many expiry entries this pass wrote. Safe to run in
    several processes at once: each lot is expired under its account's lock, once."""
    expired = 0
    with system_scope("credit expiry: lots past their date, of every tenant"):
        async with pool.acquire() as conn:
            after: tuple[datetime, uuid.UUID] = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))
            while True:
                due = await conn.fetch(
                    """SELECT tenant_id, customer, txn, expires_at FROM credit_lots
                       WHERE remaining > 0 AND expires_at <= now() AND (expires_at, txn) > ($1, $2)
                       ORDER BY expires_at, txn LIMIT $3""",
                    *after,
                    batch,
                )
                for lot in due:
                    out = await expire_lot(conn, lot["tenant_id"], lot["customer"], lot["txn"])
                    expired += out is not None
                if len(due) < batch:
                    return expired
                after = (due[-1]["expires_at"], due[-1]["txn"])


async def history(
    conn: Conn, tenant_id: uuid.UUID | None, customer: str, limit: int, cursor: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """The customer's entries, newest first, a page at a time."""
    await balance(conn, tenant_id, customer)
    rows = await conn.fetch(
        f"""SELECT * FROM credit_entries WHERE {tenant_is("tenant_id")} AND customer = $2
            AND account = 'customer:' || $2 AND ($3::bigint IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4""",
        tenant_id,
        customer,
        cursor,
        limit + 1,
    )
    page = [entry_json(r) for r in rows[:limit]]
    return page, (rows[limit - 1]["seq"] if len(rows) > limit else None)


#: A charge key may be retried after its charge was refunded this many times (each retry is a new burn).
MAX_ATTEMPTS: Final = 20
#: A charge key (no ``/``: the ledger adds ``/n`` for the n-th attempt after refunds).
CHARGE_KEY_PATTERN: Final = r"^[A-Za-z0-9_.:@-]{1,160}$"


async def _charge_lock(conn: Conn, tenant_id: uuid.UUID | None, customer: str, key: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"credits-charge|{tenant_id}|{customer}|{key}"
    )


async def _attempts(
    conn: Conn, tenant_id: uuid.UUID | None, customer: str, key: str
) -> tuple[int, asyncpg.Record | None, asyncpg.Record | None]:
    """(next attempt number, the live burn if any, the last refund if any) of a charge key: attempt 1 is the burn
    referenced ``key``, attempt n the one referenced ``key/n``; a burn is live until its ``burn_refund``."""
    attempt, last_refund = 1, None
    while attempt <= MAX_ATTEMPTS:
        ref = key if attempt == 1 else f"{key}/{attempt}"
        burn = await _existing(conn, tenant_id, customer, Movement("burn", 0, ref))
        if burn is None:
            return attempt, None, last_refund
        refund = await _existing(conn, tenant_id, customer, Movement("burn_refund", 0, ref))
        if refund is None:
            return attempt, burn, last_refund
        last_refund = refund
        attempt += 1
    return attempt, None, last_refund


async def charge(
    conn: Conn,
    tenant_id: uuid.UUID | None,
    customer: str,
    key: str,
    *,
    credits: int | None = None,
    meter: str | None = None,
    units: int | None = None,
    actor: str,
    request_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Burn for one request, once per ``key``: (the burn entry, whether it is new). A key whose burn is live
    answers that burn again (nothing is taken twice); a key whose burn was refunded (the request failed) burns
    again under ``key/n``. ``credits``, or ``meter`` and ``units`` at the plan's burn rate (rounded up).
    409 ``insufficient_credits`` when the balance does not cover it (unless the plan allows negative)."""
    async with conn.transaction():
        await _charge_lock(conn, tenant_id, customer, key)
        attempt, live, _ = await _attempts(conn, tenant_id, customer, key)
        if live is not None:
            return {**entry_json(live), "state": await _state_of(conn, tenant_id, customer, live)}, False
        if attempt > MAX_ATTEMPTS:
            raise Conflict(
                f"this key was charged and refunded {MAX_ATTEMPTS} times; use a new Idempotency-Key",
                code="charge_attempts_exhausted",
            )
        if meter is not None:
            rate, per, negative = await burn_rate(conn, tenant_id, customer, meter)
            amount = -(-(units or 0) * rate // per)
        else:
            _, _, negative = await burn_rate(conn, tenant_id, customer, "")
            amount = credits or 0
        ref = key if attempt == 1 else f"{key}/{attempt}"
        movement = Movement("burn", amount, ref, meter, units if meter is not None else None)
        out, new = await move(
            conn, tenant_id, customer, movement, actor=actor, request_id=request_id, allow_negative=negative
        )
        # a free charge holds nothing: it is final at once
        state = "held" if amount > 0 else "captured"
        await conn.execute(
            """INSERT INTO credit_charges (tenant_id, customer, key, reference, txn, credits, state, settled_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 = 'held' THEN NULL ELSE now() END)""",
            tenant_id,
            customer,
            key,
            ref,
            uuid.UUID(out["txn"]),
            amount,
            state,
        )
        return {**out, "state": state}, new


async def _state_of(conn: Conn, tenant_id: uuid.UUID | None, customer: str, burn: asyncpg.Record) -> str:
    """The state of a live burn's charge (a burn from before holds existed was final when made: captured)."""
    state = await conn.fetchval(
        f"""SELECT state FROM credit_charges WHERE {tenant_is("tenant_id")} AND customer = $2 AND reference = $3""",
        tenant_id,
        customer,
        burn["reference"],
    )
    return str(state or "captured")


def charge_json(row: asyncpg.Record) -> dict[str, Any]:
    """A charge as the API shows it."""
    return {
        "customer": row["customer"],
        "key": row["key"],
        "reference": row["reference"],
        "txn": str(row["txn"]),
        "credits": row["credits"],
        "state": row["state"],
        "createdAt": _iso(row["created_at"]),
        "settledAt": None if row["settled_at"] is None else _iso(row["settled_at"]),
    }


async def get_charge(conn: Conn, tenant_id: uuid.UUID | None, customer: str, key: str) -> dict[str, Any]:
    """The last attempt of a charge key (404 ``charge_not_found``)."""
    row = await conn.fetchrow(
        f"""SELECT * FROM credit_charges WHERE {tenant_is("tenant_id")} AND customer = $2 AND key = $3
            ORDER BY created_at DESC, reference DESC LIMIT 1""",
        tenant_id,
        customer,
        key,
    )
    if row is None:
        raise NotFound("no charge under this key for this customer", code="charge_not_found")
    return charge_json(row)


async def capture_charge(conn: Conn, tenant_id: uuid.UUID | None, customer: str, key: str) -> dict[str, Any]:
    """The handler answered: the key's held charge becomes ``captured`` (one conditional UPDATE; a concurrent hold
    pass holding the row makes it wait and then find nothing held). Answers the charge; its state says whether
    it was captured (now or before) or was ``refunded`` first. 404 ``charge_not_found`` for an unknown key."""
    row = await conn.fetchrow(
        f"""UPDATE credit_charges SET state = 'captured', settled_at = now()
            WHERE {tenant_is("tenant_id")} AND customer = $2 AND key = $3 AND state = 'held' RETURNING *""",
        tenant_id,
        customer,
        key,
    )
    if row is not None:
        return charge_json(row)
    return await get_charge(conn, tenant_id, customer, key)


async def refund_charge(
    conn: Conn, tenant_id: uuid.UUID | None, customer: str, key: str, *, actor: str, request_id: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Give back the live burn of a charge key (a ``burn_refund`` entry): (the refund entry, whether it is new).
    Refunding again answers the last refund; a key that was never charged is 404 ``charge_not_found``."""
    async with conn.transaction():
        await _charge_lock(conn, tenant_id, customer, key)
        _, live, last_refund = await _attempts(conn, tenant_id, customer, key)
        if live is None:
            if last_refund is not None:
                return {**entry_json(last_refund), "state": "refunded"}, False
            raise NotFound("no charge under this key for this customer", code="charge_not_found")
        taken = -int(live["amount"])
        if taken <= 0:  # a free (0-credit) charge: nothing to give back, the burn stays the record
            return {**entry_json(live), "state": await _state_of(conn, tenant_id, customer, live)}, False
        movement = Movement("burn_refund", taken, live["reference"], live["meter"], live["units"])
        out, new = await move(conn, tenant_id, customer, movement, actor=actor, request_id=request_id)
        await conn.execute(
            f"""UPDATE credit_charges SET state = 'refunded', settled_at = now()
                WHERE {tenant_is("tenant_id")} AND customer = $2 AND reference = $3""",
            tenant_id,
            customer,
            live["reference"],
        )
        return {**out, "state": "refunded"}, new


async def release_held(
    conn: Conn, tenant_id: uuid.UUID | None, customer: str, key: str, reference: str, timeout: float
) -> dict[str, Any] | None:
    """Refund charge ``reference`` of ``key`` if it is still held ``timeout`` seconds after its burn: the refund
    entry, or None (captured or refunded meanwhile, or not due). Under the key's lock, then the charge row's: a
    concurrent pass, capture or refund either finished first (and this finds nothing held) or waits."""
    async with conn.transaction():
        await _charge_lock(conn, tenant_id, customer, key)
        held = await conn.fetchval(
            f"""SELECT 1 FROM credit_charges WHERE {tenant_is("tenant_id")} AND customer = $2 AND reference = $3
                AND state = 'held' AND created_at <= now() - make_interval(secs => $4) FOR UPDATE""",
            tenant_id,
            customer,
            reference,
            float(timeout),
        )
        if held is None:
            return None
        out, new = await refund_charge(conn, tenant_id, customer, key, actor=HOLD_ACTOR)
        return out if new else None


async def release_due(pool: asyncpg.Pool, timeout: float, *, batch: int = 500) -> int:
    """Refund every charge, of every tenant, still held ``timeout`` seconds after its burn (its process died
    before the answer); how many this pass refunded. Safe to run in several processes at once: each charge is
    refunded under its key's lock and row lock, once."""
    released = 0
    with system_scope("credit holds: charges held past the hold timeout, of every tenant"):
        async with pool.acquire() as conn:
            after: tuple[datetime, str, str] = (datetime.min.replace(tzinfo=UTC), "", "")
            while True:
                due = await conn.fetch(
                    """SELECT tenant_id, customer, key, reference, created_at FROM credit_charges
                       WHERE state = 'held' AND created_at <= now() - make_interval(secs => $1)
                         AND (created_at, customer, reference) > ($2, $3, $4)
                       ORDER BY created_at, customer, reference LIMIT $5""",
                    float(timeout),
                    *after,
                    batch,
                )
                for row in due:
                    try:
                        out = await release_held(
                            conn, row["tenant_id"], row["customer"], row["key"], row["reference"], timeout
                        )
                    except (asyncpg.PostgresError, NotFound, ValidationFailed) as exc:
                        log.warning("credit_hold_release_failed", reference=row["reference"], error=type(exc).__name__)
                        continue
                    if out is not None:
                        released += 1
                        log.info(
                            "credit_hold_refunded",
                            tenant=str(row["tenant_id"]),
                            customer=row["customer"],
                            reference=row["reference"],
                            credits=out["credits"],
                        )
                if len(due) < batch:
                    return released
                last = due[-1]
                after = (last["created_at"], last["customer"], last["reference"])
