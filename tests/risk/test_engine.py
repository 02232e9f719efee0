"""The engine: sanctions block, concurrent rules with rule_error, first-time/large/anomaly, lists, custom rules."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path

from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import MessageV0
from solders.null_signer import NullSigner
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from risk.engine import RiskEngine
from risk.model import Flag, RiskAssessment, RiskContext, score_flags
from tests.risk.helpers import LAZARUS, PAY_TO, SANCTIONED_SOL, ctx, memory_engine


def codes(a: RiskAssessment) -> set[str]:
    return {f.code for f in a.flags}


async def test_sanctioned_payer_and_pay_to_are_blocked(tmp_path: Path) -> None:
    engine, _ = await memory_engine(tmp_path)
    a = await engine.assess(ctx(payer=LAZARUS))
    assert a.recommendation == "block"
    assert a.blocked
    assert a.level == "critical"
    assert a.score == 0.0
    assert "sanctioned_payer" in codes(a)
    assert a.list_versions["sdn"] == "2025-05-29"
    b = await engine.assess(ctx(pay_to=LAZARUS.lower()))
    assert b.blocked
    assert "sanctioned_pay_to" in codes(b)
    sol = await engine.assess(ctx(network="solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", payer=SANCTIONED_SOL))
    assert sol.blocked
    wire = a.to_wire()
    assert wire["recommendation"] == "block"
    assert wire["listVersions"]["sdn"] == "2025-05-29"
    assert wire["flags"][0].keys() >= {"code", "severity", "message", "rule"}


async def test_sanctions_cannot_be_switched_off_and_allow_list_does_not_help(tmp_path: Path) -> None:
    engine, store = await memory_engine(tmp_path)
    await store.add_addresses(None, "allow", [LAZARUS], actor="test")
    a = await engine.assess(ctx(payer=LAZARUS))
    assert a.blocked


async def test_clean_first_payment(tmp_path: Path) -> None:
    engine, _ = await memory_engine(tmp_path)
    a = await engine.assess(ctx())
    assert codes(a) == {"first_time_payer"}
    assert a.recommendation == "accept"
    assert a.level == "low"
    assert 0.9 < a.score < 1.0
    await engine.record(ctx())
    assert codes(await engine.assess(ctx())) == set()  # seen paying this payTo now


async def test_large_amount_fires_over_the_threshold(tmp_path: Path) -> None:
    cfg = {"rules": {"large_amount": {"threshold": "5000000", "action": "require_confirmation"}}}
    engine, _ = await memory_engine(tmp_path, cfg)
    assert "large_amount" not in codes(await engine.assess(ctx(amount=5_000_000)))
    a = await engine.assess(ctx(amount=5_000_001))
    assert "large_amount" in codes(a)
    assert a.recommendation == "require_confirmation"


async def test_anomaly_fires_on_an_outlier_not_on_normal_variation(tmp_path: Path) -> None:
    engine, _ = await memory_engine(tmp_path)
    normal = [9_000, 10_000, 11_000, 10_500, 9_500, 10_200, 9_800, 10_100, 9_900]
    for amt in normal:
        await engine.record(ctx(amount=amt))
    # nine samples: below min_samples, nothing fires even for a huge amount
    assert not any(c.startswith("amount_anomaly") for c in codes(await engine.assess(ctx(amount=10**9))))
    await engine.record(ctx(amount=10_000))
    for amt in (8_000, 11_000, 11_500):  # within 3 sigma (mean 10000, std ~ 537)
        assert not any(c.startswith("amount_anomaly") for c in codes(await engine.assess(ctx(amount=amt))))
    outlier = await engine.assess(ctx(amount=50_000))
    assert {"amount_anomaly_payto", "amount_anomaly_resource"} <= codes(outlier)
    # another resource of the same payTo: only the payTo baseline applies
    other = await engine.assess(ctx(amount=50_000, resource="https://api.example.com/other"))
    assert "amount_anomaly_payto" in codes(other)
    assert "amount_anomaly_resource" not in codes(other)


class _Boom:
    name = "boom"

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        raise RuntimeError("kaput")


class _Slow:
    name = "slow"

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        await asyncio.sleep(5)
        return []


class _Hit:
    name = "hit"

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        return [Flag("hit", "high", "found", self.name, "require_confirmation")]


async def test_failing_and_slow_rules_yield_rule_error(tmp_path: Path) -> None:
    engine = RiskEngine([_Boom(), _Slow(), _Hit()], rule_timeout=0.05, infer_intents=False)
    a = await asyncio.wait_for(engine.assess(ctx()), 1.0)
    errors = sorted((f.rule, f.code) for f in a.flags if f.code == "rule_error")
    assert errors == [("boom", "rule_error"), ("slow", "rule_error")]
    assert "hit" in codes(a)
    assert a.recommendation == "require_confirmation"


class _Waits:
    """Suspends (a real await) before answering, then fails or flags: exercises the eager-start hand-over."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        if self.fail:
            raise RuntimeError("after a wait")
        return [Flag(self.name, "medium", "after a wait", self.name)]


async def test_rules_that_wait_finish_in_tasks_and_fast_ones_inline() -> None:
    engine = RiskEngine(
        [_Waits("waits"), _Waits("waits_then_fails", fail=True), _Hit()], rule_timeout=1.0, infer_intents=False
    )
    a = await engine.assess(ctx())
    assert {"waits", "hit"} <= codes(a)
    assert [(f.rule, f.code) for f in a.flags if f.code == "rule_error"] == [("waits_then_fails", "rule_error")]
    # a cancelled assessment cancels the rules still waiting, without leaking them
    cancelled: list[str] = []

    class _Patient:
        name = "patient"

        async def evaluate(self, ctx: RiskContext) -> list[Flag]:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancelled.append(self.name)
                raise
            return []

    task = asyncio.ensure_future(RiskEngine([_Patient()], rule_timeout=5.0, infer_intents=False).assess(ctx()))
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert task.cancelled()
    assert cancelled == ["patient"]


async def test_lists_and_allow_list(tmp_path: Path) -> None:
    engine, store = await memory_engine(tmp_path, {"rules": {"large_amount": {"threshold": 1}}})
    tornado = "0x910cbd523d972eb0a6f4cae4618ad62622b39dbf"  # shipped mixer list
    a = await engine.assess(ctx(payer=tornado))
    assert "mixer_address" in codes(a)
    assert a.recommendation == "require_confirmation"
    await store.add_addresses("t1", "deny", [PAY_TO], actor="admin")
    engine.invalidate("t1")
    assert (await engine.assess(ctx(tenant_id="t1"))).blocked
    assert not (await engine.assess(ctx(tenant_id="t2"))).blocked  # another tenant's deny list
    payer = "0x1111111111111111111111111111111111111111"
    await store.add_addresses("t2", "allow", [payer], actor="admin")
    engine.invalidate("t2")
    b = await engine.assess(ctx(tenant_id="t2", payer=payer, amount=10**12))
    assert codes(b) == set()  # behavioural flags suppressed for an allow-listed payer
    assert store.audit[-1].action == "risk.list.add"
    assert store.audit[-1].actor == "admin"


async def test_custom_rules_over_facts(tmp_path: Path) -> None:
    cfg = {
        "rules": {"velocity": {"max_per_minute": 100}},
        "custom": [
            {"name": "burst", "when": "velocity_1m > 2 and amount > 1000", "action": "block", "severity": "high"},
            {"name": "base_only", "when": 'network != "eip155:8453"', "action": "require_confirmation"},
            {"name": "div", "when": "amount / payer_settlements > 1"},
        ],
    }
    engine, _ = await memory_engine(tmp_path, cfg)
    payer = "0x2222222222222222222222222222222222222222"
    first = await engine.assess(ctx(payer=payer, amount=5000))
    assert "custom_burst" not in codes(first)
    assert any(f.code == "rule_error" and f.rule == "custom:div" for f in first.flags)  # division by zero
    await engine.assess(ctx(payer=payer, amount=5000))
    third = await engine.assess(ctx(payer=payer, amount=5000))
    assert "custom_burst" in codes(third)
    assert third.blocked
    other = await engine.assess(ctx(network="eip155:84532"))
    assert "custom_base_only" in codes(other)


async def test_intent_from_solana_memo_and_url(tmp_path: Path) -> None:
    engine, _ = await memory_engine(tmp_path)
    memo_program = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
    payer = Pubkey.new_unique()
    ix = Instruction(memo_program, b"tier=pro;duration=30d", [])
    msg = MessageV0.try_compile(payer, [ix], [], Hash.default())
    tx = VersionedTransaction(msg, [NullSigner(payer)])
    payload = {"transaction": base64.b64encode(bytes(tx)).decode()}
    a = await engine.assess(
        ctx(network="solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", payer=str(payer), payload=payload, resource="")
    )
    assert a.intent is not None
    assert a.intent.tier == "pro"
    assert a.intent.duration == "30d"
    assert a.intent.confidence >= 0.9
    assert a.intent.memo == "tier=pro;duration=30d"
    b = await engine.assess(ctx(resource="https://api.example.com/v1/premium/report?days=7"))
    assert b.intent is not None
    assert b.intent.tier == "premium"
    assert b.intent.duration == "7"
    assert b.intent.resource_path == "/v1/premium/report"
    assert b.to_wire()["intent"]["resourcePath"] == "/v1/premium/report"


def test_score_scale() -> None:
    assert score_flags([]) == 1.0
    assert score_flags([Flag("x", "critical", "", "r")]) == 0.0
    assert 0.8 < score_flags([Flag("x", "medium", "", "r")]) < 0.9
