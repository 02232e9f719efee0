"""The wire effects of the risk stage: extensions["risk"], risk_blocked on verify and settle, learning on success."""

from __future__ import annotations

from pathlib import Path

import msgspec

from chains.base import PaymentContext
from risk.model import RISK_BLOCKED
from tests.risk.helpers import LAZARUS, PAY_TO, PAYER, USDC_BASE, memory_engine
from x402.service.risk_gate import RiskGate
from x402.wire.models import (
    PaymentPayload,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
    VerifyResponse,
    resource_url,
)


def payment(pay_to: str = PAY_TO) -> PaymentContext:
    req = PaymentRequirements(
        scheme="exact",
        network="eip155:8453",
        amount="10000",
        asset=USDC_BASE,
        pay_to=pay_to,
        max_timeout_seconds=60,
        extra={"name": "USD Coin", "version": "2", "tier": "pro"},
    )
    return PaymentContext(2, "exact", "eip155:8453", {"authorization": {"nonce": "0x" + "00" * 32}}, req, req)


async def test_verify_carries_the_assessment_and_blocks(tmp_path: Path) -> None:
    gate = RiskGate((await memory_engine(tmp_path))[0])
    ok = await gate.verify(payment(), VerifyResponse(is_valid=True, payer=PAYER, extensions={"bazaar": {}}))
    assert ok.is_valid
    body = msgspec.json.decode(msgspec.json.encode(ok))
    assert body["extensions"]["bazaar"] == {}
    risk = body["extensions"]["risk"]
    assert risk["recommendation"] == "accept"
    assert risk["listVersions"]["sdn"] == "2025-05-29"
    assert risk["intent"]["tier"] == "pro"
    blocked = await gate.verify(payment(), VerifyResponse(is_valid=True, payer=LAZARUS))
    assert not blocked.is_valid
    assert blocked.invalid_reason == RISK_BLOCKED
    assert isinstance(blocked.invalid_message, str)
    assert "sanctioned_payer" in blocked.invalid_message
    to_sanctioned = await gate.verify(payment(LAZARUS), VerifyResponse(is_valid=True, payer=PAYER))
    assert to_sanctioned.invalid_reason == RISK_BLOCKED
    invalid = VerifyResponse(is_valid=False, invalid_reason="insufficient_funds", payer=LAZARUS)
    assert (await gate.verify(payment(), invalid)).invalid_reason == "insufficient_funds"  # untouched


async def test_settle_block_and_learning(tmp_path: Path) -> None:
    engine, _ = await memory_engine(tmp_path)
    gate = RiskGate(engine)
    a = await gate.assess(payment(), payer=LAZARUS)
    resp = gate.blocked_settlement("base", a, LAZARUS)
    body = msgspec.json.decode(msgspec.json.encode(resp))
    assert body["success"] is False
    assert body["errorReason"] == RISK_BLOCKED
    assert body["transaction"] == ""
    assert body["network"] == "base"
    assert "risk" in body["extensions"]
    assert {f.code for f in (await gate.assess(payment(), payer=PAYER)).flags} == {"first_time_payer"}
    ok = SettleResponse(success=True, payer=PAYER, transaction="0xabc", network="eip155:8453", amount="10000")
    await gate.settled(payment(), ok)
    assert {f.code for f in (await gate.assess(payment(), payer=PAYER)).flags} == set()


def test_resource_url() -> None:
    req = payment().requirements
    p = PaymentPayload(resource=ResourceInfo(url="https://x.example/a"), accepted=req, payload={})
    assert resource_url(p, req) == "https://x.example/a"
    assert resource_url(PaymentPayload(accepted=req, payload={}), req) == ""
