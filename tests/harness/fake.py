"""Fake-chain test helpers: a service app on the in-memory fake adapter (chains/fake.py) and signed payments."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chains import fake
from chains.base import PaymentContext
from chains.config import NetworkConfig
from chains.fake import FakeAdapter, FakeLedger, FakePayer, fake_factories
from tests.harness.wire import Payment, payment_of
from x402.service.app import create_app
from x402.service.settings import Settings
from x402.wire.models import PaymentRequirements


def fake_requirements(pay_to: str, amount: int = 10_000, **changes: Any) -> PaymentRequirements:
    """Requirements for ``amount`` FAKEUSD on fake:1."""
    fields: dict[str, Any] = {"network": fake.NETWORK, "asset": fake.ASSET, "extra": {}, **changes}
    return PaymentRequirements(scheme="exact", amount=str(amount), pay_to=pay_to, max_timeout_seconds=60, **fields)


def fake_ctx(payload: dict[str, Any], req: PaymentRequirements) -> PaymentContext:
    """The context the facilitator builds for a v2 payment of ``req``."""
    return PaymentContext(2, "exact", req.network, dict(payload), req, accepted=req)


def fake_payment(payer: FakePayer, req: PaymentRequirements, **changes: Any) -> Payment:
    """``payer``'s signed payment of ``req`` (``changes`` override authorization fields)."""
    return payment_of(req, payer.sign(req, **changes), payer.address)


def fake_app(database_url: str, ledger: FakeLedger, **settings: Any) -> web.Application:
    """The service app with fake:1 served by the fake adapter over ``ledger`` (registered here, not by entry point)."""
    config = Settings(
        database_url=database_url,
        networks=(NetworkConfig(fake.NETWORK, ("fake://ledger",)),),
        log_level="warning",
        reconcile_interval=0,
        **settings,
    )
    return create_app(config, factories=fake_factories(FakeAdapter.serving(ledger)))
