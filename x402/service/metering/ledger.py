"""The prepaid-credit ledger: double-entry, append-only, audited; burns exact under concurrency.

A movement locks the customer's ``credit_accounts`` row with one conditional ``UPDATE`` (a burn only when the
balance covers it, unless the plan allows going negative), then appends its two legs and an audit entry in the
same transaction. A movement with a ``reference`` happens once: a repeat answers the first one's result.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.errors import Conflict, NotFound, ValidationFailed
from x402.service.metering.ingest import MAX_VALUE
from x402.service.metering.plans import tenant_is
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry

Conn = asyncpg.Connection | PoolConnectionProxy

KINDS: Final = ("grant", "purchase", "burn", "expiry", "refund")
#: The counter account of each kind (the other leg of the double entry).
COUNTER: Final = {
    "grant": "issued:grant",
    "purchase": "issued:purchase",
    "burn": "consumed:burn",
    "expiry": "expired",
    "refund": "refunded",
}
#: Kinds that add to the customer's balance (the others take from it).
CREDITING: Final = frozenset({"grant", "purchase"})
REFERENCE_PATTERN: Final = r"^[A-Za-z0-9_.:@/-]{1,200}$"


@dataclass(frozen=True, slots=True)
class Movement:
    """One ledger transaction asked for."""

    kind: str
    credits: int
    reference: str | None = None
    meter: str | None = None
    units: int | None = None


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
) -> tuple[dict[str, Any], bool]:
    """Apply one movement (its own transaction); (the customer's entry, whether it is new). 409 when a burn or
    expiry would take the balance below zero and the plan does not allow it."""
    if m.kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {list(KINDS)}", code="invalid_credit_entry")
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
            raise Conflict(
                "the customer's credit balance does not cover this",
                code="insufficient_credits",
                balance=int(have or 0),
                needed=m.credits,
            )
        txn = uuid.uuid4()
        rows = await conn.fetch(
            """INSERT INTO credit_entries (txn, tenant_id, customer, kind, account, amount, balance, meter, units,
                                           reference, actor)
               SELECT $1, $2, $3, $4, a, d, b, $7, $8, $9, $10
               FROM unnest($5::text[], $6::bigint[], $11::bigint[]) AS u(a, d, b)
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
        )
        mine = next(r for r in rows if r["account"] == f"customer:{customer}")
        out = entry_json(mine)
        await audit.append(
            conn,
            AuditEntry(actor, f"credits.{m.kind}", "credit_account", f"{tenant_id}:{customer}", None, out, request_id),
        )
    return out, True


async def balance(conn: Conn, tenant_id: uuid.UUID | None, customer: str) -> dict[str, Any]:
    """The customer's balance (404 when the customer never had a movement)."""
    row = await conn.fetchrow(
        f"SELECT balance, updated_at FROM credit_accounts WHERE {tenant_is('tenant_id')} AND customer = $2",
        tenant_id,
        customer,
    )
    if row is None:
        raise NotFound("no credit account for this customer", code="customer_not_found")
    return {"customer": customer, "balance": row["balance"], "updatedAt": _iso(row["updated_at"])}


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
