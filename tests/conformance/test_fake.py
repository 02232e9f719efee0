"""The in-memory fake adapter (chains/fake.py) passes the same conformance suite as the real chains."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from chains import fake
from chains.base import ChainAdapter, PaymentContext
from chains.fake import FakeAdapter, FakeLedger, FakePayer
from tests.conformance.kit import Fault, KitPayment
from tests.conformance.suite import AdapterConformance
from tests.harness.fake import fake_ctx, fake_requirements
from x402.wire.models import PaymentRequirements

PRICE = 10_000


@dataclass
class FakeKit:
    """The fake chain's kit: one ledger, a funded payer and a payee."""

    ledger: FakeLedger
    adapter: FakeAdapter
    payer: FakePayer = field(default_factory=FakePayer)
    pay_to: str = field(default_factory=lambda: FakePayer().address)
    network: str = fake.NETWORK
    rejections: Mapping[Fault, str] = field(
        default_factory=lambda: {
            "wrong_amount": fake.AMOUNT_MISMATCH,
            "wrong_pay_to": fake.RECIPIENT_MISMATCH,
            "wrong_asset": fake.ASSET_MISMATCH,
            "wrong_network": fake.NETWORK_MISMATCH,
            "expired": fake.EXPIRED,
            "bad_signature": fake.SIGNATURE_INVALID,
            "insufficient_balance": fake.INSUFFICIENT_FUNDS,
        }
    )
    replay_reason: str = fake.NONCE_USED
    documented_reasons: bool = False
    unknown_tx_id: str = "0x" + "ab" * 32

    def __post_init__(self) -> None:
        self.ledger.mint(self.payer.address, 10**9)

    def requirements(self, **changes: Any) -> PaymentRequirements:
        return fake_requirements(self.pay_to, **changes)

    async def payment(self) -> KitPayment:
        req = self.requirements()
        return KitPayment(fake_ctx(self.payer.sign(req), req), self.payer.address, self.pay_to, PRICE)

    async def faulty(self, fault: Fault) -> PaymentContext:
        req = self.requirements()
        match fault:
            case "wrong_amount":
                payload = self.payer.sign(req, value=PRICE - 1)
            case "wrong_pay_to":
                payload = self.payer.sign(req, to=FakePayer().address)
            case "wrong_asset":
                payload = self.payer.sign(req, asset="OTHERUSD")
            case "wrong_network":
                payload = self.payer.sign(req, network="fake:2")
            case "expired":
                payload = self.payer.sign(req, validBefore=int(time.time()) - 1)
            case "bad_signature":
                payload = self.payer.sign(req, signer=FakePayer())
            case "insufficient_balance":
                payload = FakePayer().sign(req)
        return fake_ctx(payload, req)

    async def balance(self, owner: str) -> int:
        return self.ledger.balance(owner)

    async def transfer(self, amount: int) -> tuple[str, str]:
        return self.ledger.transfer(self.payer.address, self.pay_to, amount), self.payer.address

    def new_address(self) -> str:
        return FakePayer().address

    def asset(self) -> str:
        return fake.ASSET

    async def failover_adapter(self, *, alive: bool) -> ChainAdapter:
        dead = FakeLedger(up=False)
        return FakeAdapter({self.network: [dead, self.ledger] if alive else [dead]})


class TestFakeConformance(AdapterConformance):
    """The fake adapter under the shared contract."""

    @pytest.fixture
    async def kit(self) -> AsyncIterator[FakeKit]:
        ledger = FakeLedger()
        adapter = FakeAdapter.serving(ledger)
        yield FakeKit(ledger, adapter)
        await adapter.close()


def test_fake_is_never_an_entry_point() -> None:
    from chains.registry import load_factories

    assert fake.FAMILY not in load_factories()


async def test_forged_payer_cannot_spend_another_balance() -> None:
    """The signature check is real: a payload naming a funded payer but signed by another key is refused."""
    ledger = FakeLedger()
    victim, thief = FakePayer(), FakePayer()
    ledger.mint(victim.address, 10**6)
    adapter = FakeAdapter.serving(ledger)
    req = fake_requirements(thief.address)
    payload = victim.sign(req, signer=thief, nonce="0x" + secrets.token_hex(32))
    out = await adapter.verify(fake_ctx(payload, req))
    assert out.reason == fake.SIGNATURE_INVALID
    assert ledger.balance(victim.address) == 10**6
