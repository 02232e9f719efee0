"""Payments above a wallet's approval threshold wait here until a person approves or rejects them."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from typing import Any, Final

import asyncpg

from wallets.audit import AuditSink, WalletAudit, no_audit
from wallets.errors import ApprovalInvalid
from wallets.events import purchase_json
from x402.errors import NotFound
from x402.wire.models import PaymentRequirements

#: How long an approval (pending or approved) stays usable.
APPROVAL_TTL: Final = timedelta(hours=24)


def approval_json(row: asyncpg.Record) -> dict[str, Any]:
    """An approval as the API shows it."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "walletId": str(row["wallet_id"]),
        "status": row["status"],
        **purchase_json(row),
        "createdAt": row["created_at"].astimezone(UTC).isoformat(),
        "expiresAt": row["expires_at"].astimezone(UTC).isoformat(),
    }
    if row["decided_by"]:
        out["decidedBy"] = row["decided_by"]
    return out


class Approvals:
    """Create, list and decide approvals."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditSink = no_audit) -> None:
        self.pool = pool
        self.audit = audit

    async def request(self, wallet_id: uuid.UUID, offer: PaymentRequirements, amount: int, url: str) -> uuid.UUID:
        """A new pending approval for this payment."""
        approval_id = uuid.uuid4()
        await self.pool.execute(
            """INSERT INTO wallet_approvals (id, wallet_id, status, amount, network, asset, pay_to, url, expires_at)
               VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, now() + $8::interval)""",
            approval_id,
            wallet_id,
            amount,
            offer.network,
            offer.asset,
            offer.pay_to,
            url[:2000],
            APPROVAL_TTL,
        )
        return approval_id

    async def list_all(self, wallet_id: uuid.UUID, status: str | None = None) -> list[dict[str, Any]]:
        """The wallet's approvals, newest first."""
        rows = await self.pool.fetch(
            """SELECT * FROM wallet_approvals WHERE wallet_id = $1 AND ($2::text IS NULL OR status = $2)
               ORDER BY created_at DESC LIMIT 200""",
            wallet_id,
            status,
        )
        return [approval_json(r) for r in rows]

    async def decide(
        self, wallet_id: uuid.UUID, approval_id: uuid.UUID, approve: bool, actor: str, request_id: str | None = None
    ) -> dict[str, Any]:
        """Approve or reject a pending approval (audited)."""
        status = "approved" if approve else "rejected"
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM wallet_approvals WHERE id = $1 AND wallet_id = $2 FOR UPDATE", approval_id, wallet_id
            )
            if row is None:
                raise NotFound("no such approval", code="approval_not_found")
            if row["status"] != "pending":
                raise ApprovalInvalid(f"the approval is already {row['status']}", status=row["status"])
            new = await conn.fetchrow(
                """UPDATE wallet_approvals SET status = $2, decided_by = $3, decided_at = now()
                   WHERE id = $1 RETURNING *""",
                approval_id,
                status,
                actor,
            )
            assert new is not None
            await self.audit(
                conn,
                WalletAudit(
                    actor,
                    f"wallet.approval.{status}",
                    str(wallet_id),
                    approval_json(row),
                    approval_json(new),
                    request_id,
                ),
            )
        return approval_json(new)
