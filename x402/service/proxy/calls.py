"""The ``calls`` table (migration 0029): one row per routed call, the platform fee owed, usage and revenue views."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

#: The platform fee is recorded as owed by the caller, on top of the upstream price: it is not deducted on-chain
#: (the upstream is paid exactly its listed price, the fee is billed from these rows).
BPS: Final = 10_000


def fee_of(amount: int, bps: int) -> int:
    """The fee in atomic units: ``floor(amount * bps / 10000)``."""
    return amount * bps // BPS


@dataclass(frozen=True, slots=True)
class Call:
    """One routed call as recorded."""

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    wallet_id: uuid.UUID
    resource_id: uuid.UUID
    owner_tenant_id: uuid.UUID | None
    url: str
    method: str
    status: str
    fee_bps: int
    latency_ms: int
    amount: int = 0
    payer: str | None = None
    pay_to: str | None = None
    code: str | None = None
    upstream_status: int | None = None
    payment_id: uuid.UUID | None = None

    @property
    def fee(self) -> int:
        """The fee owed (only paid calls owe one)."""
        return fee_of(self.amount, self.fee_bps) if self.status == "paid" else 0


async def record(conn: asyncpg.Connection | asyncpg.Pool, call: Call) -> None:
    """Insert the row (in the caller's tenant scope)."""
    await conn.execute(
        """INSERT INTO calls (id, tenant_id, wallet_id, resource_id, owner_tenant_id, url, method, payer, pay_to,
                              amount, fee_bps, fee, status, code, upstream_status, payment_id, latency_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)""",
        call.id,
        call.tenant_id,
        call.wallet_id,
        call.resource_id,
        call.owner_tenant_id,
        call.url,
        call.method,
        call.payer,
        call.pay_to,
        call.amount,
        call.fee_bps,
        call.fee,
        call.status,
        call.code,
        call.upstream_status,
        call.payment_id,
        call.latency_ms,
    )


async def set_code(conn: asyncpg.Connection | asyncpg.Pool, call_id: uuid.UUID, code: str) -> None:
    """A streamed call's outcome after its row was written (the stream was cut: upstream_too_large,
    upstream_timeout, upstream_broken, client_disconnected, stream_failed); status, amount and fee stay as recorded."""
    await conn.execute("UPDATE calls SET code = $2 WHERE id = $1", call_id, code)


def _row(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "walletId": str(r["wallet_id"]),
        "resourceId": str(r["resource_id"]),
        "url": r["url"],
        "method": r["method"],
        "status": r["status"],
        "code": r["code"],
        "upstreamStatus": r["upstream_status"],
        "amount": str(int(r["amount"])),
        "feeBps": r["fee_bps"],
        "fee": str(int(r["fee"])),
        "paymentId": str(r["payment_id"]) if r["payment_id"] else None,
        "latencyMs": r["latency_ms"],
        "createdAt": r["created_at"].isoformat(),
    }


def _mine(wallets: frozenset[uuid.UUID] | None, args: list[Any]) -> str:
    """The caller's rows: RLS and the tenant filter keep the tenant's; an agent key sees its wallets' only."""
    cond = "tenant_id IS NOT DISTINCT FROM $1"
    if wallets is not None:
        args.append(list(wallets))
        cond += f" AND wallet_id = ANY(${len(args)}::uuid[])"
    return cond


async def list_calls(
    pool: asyncpg.Pool, tenant_id: uuid.UUID | None, wallets: frozenset[uuid.UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """The caller's calls, newest first."""
    args: list[Any] = [tenant_id]
    cond = _mine(wallets, args)
    args.append(limit)
    rows = await pool.fetch(
        f"SELECT * FROM calls WHERE {cond} ORDER BY created_at DESC, id LIMIT ${len(args)}",
        *args,
    )
    return [_row(r) for r in rows]


_AGG: Final = """count(*) AS calls, count(*) FILTER (WHERE status = 'paid') AS paid,
    coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS amount,
    coalesce(sum(fee), 0) AS fees, coalesce(round(avg(latency_ms)), 0)::int AS avg_latency"""


def _agg(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "calls": int(r["calls"]),
        "paid": int(r["paid"]),
        "amount": str(int(r["amount"])),
        "fees": str(int(r["fees"])),
        "avgLatencyMs": int(r["avg_latency"]),
    }


async def summary(
    pool: asyncpg.Pool, tenant_id: uuid.UUID | None, wallets: frozenset[uuid.UUID] | None
) -> list[dict[str, Any]]:
    """The caller's usage per resource: calls, paid calls, amount paid upstream, fees owed, mean latency."""
    args: list[Any] = [tenant_id]
    cond = _mine(wallets, args)
    rows = await pool.fetch(
        f"SELECT resource_id, {_AGG} FROM calls WHERE {cond} GROUP BY resource_id ORDER BY resource_id", *args
    )
    return [{"resourceId": str(r["resource_id"]), **_agg(r)} for r in rows]


async def usage(conn: asyncpg.Connection | asyncpg.Pool, resource_id: uuid.UUID) -> dict[str, Any]:
    """Every caller's calls to one resource, as aggregates (run in system scope for the listing's owner)."""
    r = await conn.fetchrow(
        f"SELECT {_AGG}, count(DISTINCT tenant_id) AS callers FROM calls WHERE resource_id = $1", resource_id
    )
    assert r is not None  # an aggregate always has a row
    return {**_agg(r), "revenue": str(int(r["amount"])), "callers": int(r["callers"])}
