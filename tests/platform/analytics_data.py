"""Known payment records for the analytics tests (times around the Europe/Berlin DST change of 2026-03-29)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from x402.service.platform.writer import PaymentRecord, PaymentWriter

NET = "eip155:84532"
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"  # Base Sepolia USDC (6 decimals, a dollar)
EURC = "0x808456652fdb597867f38412077A9182bf77359F"  # Base Sepolia EURC (not a dollar)
SHOP = "0x1111111111111111111111111111111111111111"
SHOP2 = "0x2222222222222222222222222222222222222222"
REPORT = "https://shop.example/report"
DATA = "https://shop.example/data"
P1, P2, P3 = (f"0x{c * 40}" for c in "abc")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def records(tenant: uuid.UUID, *, scale: int = 1, shift_minutes: int = 0, pending: bool = False) -> list[PaymentRecord]:
    """Seven records (eight with ``pending``):

    r1 settle ok   03-28 22:30Z  P1 1.000000 USDC  /report GET   10 ms
    r2 settle ok   03-28 23:30Z  P1 2.500000 USDC  /report GET   20 ms
    r3 settle ok   03-29 21:30Z  P2 0.500000 EURC  /data POST    30 ms  (pay to SHOP2)
    r4 settle fail 03-29 22:30Z  P2 0.700000 USDC  /data POST    40 ms  insufficient_funds (SHOP2)
    r5 verify inv. 03-29 12:00Z  P3 0.000300 USDC  /report GET    5 ms  risk_blocked (block, critical)
    r6 verify ok   03-29 11:59Z  P1 2.500000 USDC  /report GET    7 ms  (accept, low: new_payer)
    r7 verify_tx   03-29 13:00Z  P3 0.000100 USDC  (no resource)  9 ms  (accept, low)
    r8 settle pend 03-29 14:00Z  P3 0.004000 USDC  /report GET   50 ms  settlement_pending
    """
    shift = timedelta(minutes=shift_minutes)

    def rec(kind: str, status: str, at: str, payer: str, amount: int, ms: float, **kw: object) -> PaymentRecord:
        base: dict[str, object] = {"network": NET, "asset": USDC, "pay_to": SHOP, "resource": REPORT, "method": "GET"}
        base.update(kw)
        return PaymentRecord(
            kind=kind,
            status=status,
            tenant_id=tenant,
            payer=payer,
            amount=amount * scale,
            latency_ms=ms,
            created_at=_at(at) + shift,
            **base,  # type: ignore[arg-type]
        )

    out = [
        rec("settle", "success", "2026-03-28T22:30", P1, 1_000_000, 10, tx="0x01"),
        rec("settle", "success", "2026-03-28T23:30", P1, 2_500_000, 20, tx="0x02"),
        rec(
            "settle",
            "success",
            "2026-03-29T21:30",
            P2,
            500_000,
            30,
            asset=EURC,
            pay_to=SHOP2,
            resource=DATA,
            method="POST",
            tx="0x03",
        ),
        rec(
            "settle",
            "failed",
            "2026-03-29T22:30",
            P2,
            700_000,
            40,
            pay_to=SHOP2,
            resource=DATA,
            method="POST",
            reason="insufficient_funds",
        ),
        rec(
            "verify",
            "invalid",
            "2026-03-29T12:00",
            P3,
            300,
            5,
            reason="risk_blocked",
            risk="block",
            risk_level="critical",
            risk_flags="sanctions,velocity",
        ),
        rec(
            "verify",
            "valid",
            "2026-03-29T11:59",
            P1,
            2_500_000,
            7,
            risk="accept",
            risk_level="low",
            risk_flags="new_payer",
        ),
        rec(
            "verify_tx",
            "verified",
            "2026-03-29T13:00",
            P3,
            100,
            9,
            resource="",
            method="",
            tx="0x07",
            risk="accept",
            risk_level="low",
        ),
    ]
    if pending:
        out.append(rec("settle", "pending", "2026-03-29T14:00", P3, 4000, 50, reason="settlement_pending"))
    return out


async def seed_records(
    writer: PaymentWriter, tenant: uuid.UUID, *, scale: int = 1, shift_minutes: int = 0, pending: bool = False
) -> list[PaymentRecord]:
    """Write the records through the payment writer (one batch, as the service writes them)."""
    out = records(tenant, scale=scale, shift_minutes=shift_minutes, pending=pending)
    for r in out[:-1]:
        writer.submit(r)
    await writer.write(out[-1])
    return out
