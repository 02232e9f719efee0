"""The one ChainAdapter conformance suite: subclass AdapterConformance and override the ``kit`` fixture.

Every chain adapter (EVM on anvil, Solana on LiteSVM, the in-memory fake, a third party's) runs these same tests,
the way web3.py runs one suite over every provider. How to run it: tests/conformance/README.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chains.base import (
    ChainAdapter,
    Confirmation,
    PaymentContext,
    PaymentStatusSource,
    PreparedSettlement,
    SettlementRejected,
    TxCheck,
)
from chains.registry import ChainRegistry
from tests.conformance.kit import FAULTS, ChainKit, Fault, KitPayment
from x402.errors import ChainRejected, DependencyError
from x402.service.facilitator.journal import Journal
from x402.service.facilitator.service import FacilitatorService
from x402.wire import reasons

SETTLE_TIMEOUT = 15.0


def same(a: str | None, b: str | None) -> bool:
    """Addresses compare case-insensitively (EVM checksums)."""
    return (a or "").lower() == (b or "").lower()


async def settle(adapter: ChainAdapter, ctx: PaymentContext) -> tuple[PreparedSettlement, Confirmation]:
    """prepare -> broadcast -> confirm, as the facilitator drives an adapter."""
    prepared = await adapter.prepare_settlement(ctx)
    await adapter.broadcast(ctx.requirements.network, prepared)
    return prepared, await adapter.confirm(ctx, ctx.requirements.network, prepared.tx_id, timeout=SETTLE_TIMEOUT)


class AdapterConformance:
    """The contract of a ChainAdapter; a subclass supplies the chain through the ``kit`` fixture."""

    @pytest.fixture
    def kit(self) -> ChainKit:
        """Override in the subclass: a ChainKit for the adapter under test."""
        raise NotImplementedError("subclass AdapterConformance and override the kit fixture")

    # --------------------------------------------------------------------------------------- shape

    def test_is_a_chain_adapter(self, kit: ChainKit) -> None:
        assert isinstance(kit.adapter, ChainAdapter)
        assert kit.network in kit.adapter.networks()
        kinds = {(k.scheme, k.network) for k in kit.adapter.supported_kinds()}
        assert ("exact", kit.network) in kinds
        assert any(addrs for addrs in kit.adapter.signers().values())

    async def test_health(self, kit: ChainKit) -> None:
        assert (await kit.adapter.check_health()).get(kit.network) is True

    # -------------------------------------------------------------------------------------- verify

    async def test_verify_happy_path(self, kit: ChainKit) -> None:
        p = await kit.payment()
        out = await kit.adapter.verify(p.ctx)
        assert out.is_valid, out
        assert out.reason is None
        assert same(out.payer, p.payer)
        assert (await kit.adapter.verify(p.ctx, simulate=False)).is_valid

    @pytest.mark.parametrize("fault", FAULTS)
    async def test_shared_rejection(self, kit: ChainKit, fault: Fault) -> None:
        if fault not in kit.rejections:
            pytest.skip(f"{fault} does not apply to {kit.network}")
        ctx = await kit.faulty(fault)
        out = await kit.adapter.verify(ctx)
        assert not out.is_valid, f"{fault} was accepted"
        assert out.reason == kit.rejections[fault], out

    async def test_malformed_payload_is_invalid_not_an_error(self, kit: ChainKit) -> None:
        p = await kit.payment()
        for payload in ({}, {"transaction": 7, "authorization": "x", "signature": None}):
            ctx = PaymentContext(p.ctx.x402_version, p.ctx.scheme, p.ctx.network, payload, p.ctx.requirements)
            out = await kit.adapter.verify(ctx)
            assert not out.is_valid
            assert out.reason

    def test_reason_codes_are_documented(self, kit: ChainKit) -> None:
        if not kit.documented_reasons:
            pytest.skip("this adapter's reason codes are its own")
        for code in [*kit.rejections.values(), kit.replay_reason]:
            assert code in reasons.DESCRIPTIONS, code

    # -------------------------------------------------------------------------------------- settle

    async def test_settle_moves_the_money_once(self, kit: ChainKit) -> None:
        p = await kit.payment()
        payer_before, pay_to_before = await kit.balance(p.payer), await kit.balance(p.pay_to)
        prepared, conf = await settle(kit.adapter, p.ctx)
        assert conf.status == "confirmed", conf
        assert conf.amount == p.amount
        assert await kit.balance(p.pay_to) == pay_to_before + p.amount
        assert await kit.balance(p.payer) == payer_before - p.amount
        # the reconciler re-sends a stored transaction: harmless
        await kit.adapter.broadcast(kit.network, prepared)
        again = await kit.adapter.confirm(p.ctx, kit.network, prepared.tx_id, timeout=0)
        assert again.status == "confirmed"
        # settling the same payment again moves nothing: prepare refuses, or it is the same landed transaction
        try:
            second, conf2 = await settle(kit.adapter, p.ctx)
        except (SettlementRejected, ChainRejected):
            pass
        else:
            assert second.tx_id == prepared.tx_id or conf2.status != "confirmed", (second, conf2)
        assert await kit.balance(p.pay_to) == pay_to_before + p.amount
        assert await kit.balance(p.payer) == payer_before - p.amount

    async def test_settled_payment_is_a_replay(self, kit: ChainKit) -> None:
        p = await kit.payment()
        assert (await kit.adapter.verify(p.ctx)).is_valid
        _, conf = await settle(kit.adapter, p.ctx)
        assert conf.status == "confirmed", conf
        out = await kit.adapter.verify(p.ctx)
        assert not out.is_valid
        assert out.reason == kit.replay_reason, out

    async def test_payment_status_for_payers(self, kit: ChainKit) -> None:
        """Payers' reconcilers ask whether a signed payment settled: pending before, settled after."""
        if not isinstance(kit.adapter, PaymentStatusSource):
            pytest.skip("the adapter does not answer payment_status")
        p = await kit.payment()
        payload, reqs = dict(p.ctx.payload), p.ctx.requirements
        assert (await kit.adapter.payment_status(kit.network, payload, reqs)).state == "pending"
        _, conf = await settle(kit.adapter, p.ctx)
        assert conf.status == "confirmed", conf
        assert (await kit.adapter.payment_status(kit.network, payload, reqs)).state == "settled"

    async def test_confirm_unknown_transaction(self, kit: ChainKit) -> None:
        conf = await kit.adapter.confirm(None, kit.network, kit.unknown_tx_id, timeout=0)
        assert conf.status == "unknown", conf

    # ----------------------------------------------------------------------------------- duplicate

    async def test_replay_key_identifies_a_payment(self, kit: ChainKit) -> None:
        p1, p2 = await kit.payment(), await kit.payment()  # same payer, amount and payee
        k1 = kit.adapter.replay_key(p1.ctx)
        rebuilt = PaymentContext(2, p1.ctx.scheme, p1.ctx.network, dict(p1.ctx.payload), p1.ctx.requirements)
        assert kit.adapter.replay_key(rebuilt) == k1  # the same payment, however it arrives
        assert kit.adapter.replay_key(p2.ctx) != k1  # paying the same again is another payment
        assert k1.network == kit.network
        assert same(k1.payer, p1.payer)

    @pytest.fixture
    async def facilitator(self, kit: ChainKit, database_url: str) -> AsyncIterator[FacilitatorService]:
        """The service's facilitator (replay journal in Postgres) over the adapter under test alone."""
        registry = ChainRegistry()
        registry.register(kit.network, kit.adapter)
        pool: Any = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            yield FacilitatorService(registry, Journal(pool), settle_timeout=SETTLE_TIMEOUT)
        finally:
            await pool.close()

    async def test_duplicate_settle_through_the_facilitator(
        self, kit: ChainKit, facilitator: FacilitatorService
    ) -> None:
        """The journal keys on replay_key: a second /settle is duplicate_settlement and the money moves once."""
        p = await kit.payment()
        before = await kit.balance(p.pay_to)
        payload, reqs = p.wire()
        first = await facilitator.settle(payload, reqs)
        assert first.success, first
        second = await facilitator.settle(payload, reqs)
        assert not second.success
        assert second.error_reason == reasons.DUPLICATE_SETTLEMENT
        assert second.transaction == first.transaction
        assert await kit.balance(p.pay_to) == before + p.amount

    async def test_faulty_payments_never_settle_through_the_facilitator(
        self, kit: ChainKit, facilitator: FacilitatorService
    ) -> None:
        p = await kit.payment()
        before, payer_before = await kit.balance(p.pay_to), await kit.balance(p.payer)
        for fault in kit.rejections:
            ctx = await kit.faulty(fault)
            payload, reqs = KitPayment(ctx, p.payer, p.pay_to, p.amount).wire()
            out = await facilitator.settle(payload, reqs)
            assert not out.success, (fault, out)
            assert out.error_reason, (fault, out)
        assert await kit.balance(p.pay_to) == before
        assert await kit.balance(p.payer) == payer_before  # nor was it paid to anyone else

    # ------------------------------------------------------------------------------------ failover

    async def test_first_rpc_dead_second_serves(self, kit: ChainKit) -> None:
        adapter = await kit.failover_adapter(alive=True)
        try:
            p = await kit.payment()
            assert (await adapter.verify(p.ctx)).is_valid
            assert (await adapter.check_health()).get(kit.network) is True
            before = await kit.balance(p.pay_to)
            _, conf = await settle(adapter, p.ctx)
            assert conf.status == "confirmed", conf
            assert await kit.balance(p.pay_to) == before + p.amount
        finally:
            await adapter.close()

    async def test_all_rpcs_dead_is_a_dependency_error(self, kit: ChainKit) -> None:
        adapter = await kit.failover_adapter(alive=False)
        try:
            p = await kit.payment()
            assert (await adapter.check_health()).get(kit.network) is False
            with pytest.raises(DependencyError):
                await adapter.verify(p.ctx)
            with pytest.raises(DependencyError):
                await adapter.confirm(None, kit.network, kit.unknown_tx_id, timeout=0)
        finally:
            await adapter.close()

    # ----------------------------------------------------------------------------------- verify-tx

    async def test_verify_tx_happy_path(self, kit: ChainKit) -> None:
        tx_id, payer = await kit.transfer(7_000)
        p = await kit.payment()
        out = await kit.adapter.verify_transaction(TxCheck(kit.network, tx_id, p.pay_to, kit.asset(), 7_000))
        assert out.status == "verified", out
        assert out.amount == 7_000
        assert same(out.payer, payer)
        assert out.confirmations >= 1

    async def test_verify_tx_rejections(self, kit: ChainKit) -> None:
        tx_id, _ = await kit.transfer(7_000)
        p = await kit.payment()
        checks = {
            "other payee": TxCheck(kit.network, tx_id, kit.new_address(), kit.asset(), 7_000),
            "too little": TxCheck(kit.network, tx_id, p.pay_to, kit.asset(), 7_001),
            "unknown": TxCheck(kit.network, kit.unknown_tx_id, p.pay_to, kit.asset(), 1),
        }
        for name, check in checks.items():
            out = await kit.adapter.verify_transaction(check)
            assert out.status == "invalid", (name, out)
            assert out.reason, (name, out)
