"""Every outcome is recorded with its provider event before it is answered: the paywall's in-process facilitator,
and /settle answering a success, then a duplicate (fake chain, real Postgres)."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import aiohttp
import asyncpg
import msgspec

from chains import fake
from chains.fake import FakeLedger, FakePayer
from tests.harness.fake import fake_app
from tests.paywall.conftest import ProviderFactory
from x402.client import PaymentPolicy, X402Client
from x402.service.appkeys import FACILITATOR, RECONCILER
from x402.service.facilitator.journal import Journal
from x402.service.storage.scope import system_scope
from x402.wire.codec import PAYMENT_REQUIRED, decode_payment_required
from x402.wire.models import PaymentRequirements, decode_facilitator_request


async def _rows(database_url: str) -> tuple[list[Any], dict[str, list[Any]]]:
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch("SELECT * FROM payments ORDER BY created_at")
        events: dict[str, list[Any]] = {}
        for e in await conn.fetch("SELECT type, tenant_id, data FROM provider_events ORDER BY seq"):
            data = json.loads(e["data"])
            events.setdefault(data["paymentId"], []).append((e["type"], e["tenant_id"], data))
        return list(records), events
    finally:
        await conn.close()


async def test_paywall_payment_is_recorded_before_it_is_served(
    make_fake_provider: ProviderFactory, fake_ledger: FakeLedger, database_url: str
) -> None:
    provider = await make_fake_provider()
    payer = FakePayer()
    fake_ledger.mint(payer.address, 1_000_000)
    async with aiohttp.ClientSession() as http:
        resp = await X402Client(http, [payer], PaymentPolicy(allowed_assets=[fake.ASSET])).get(provider.url("/paid"))
    assert resp.status == 200
    assert resp.settlement is not None
    records, events = await _rows(database_url)  # no waiting: written before the resource was served
    assert [(r["kind"], r["status"]) for r in records] == [("verify", "valid"), ("settle", "success")]
    verify, settle = records
    assert settle["tx"] == resp.settlement.transaction
    assert settle["tenant_id"] is None  # the in-process facilitator has no API key
    [(vtype, _, vdata)] = events[str(verify["id"])]
    [(stype, stenant, sdata)] = events[str(settle["id"])]
    assert (vtype, stype, stenant) == ("payment.verified", "payment.settled", None)
    assert sdata["resource"] == provider.url("/paid")
    assert sdata["transaction"] == resp.settlement.transaction
    assert (sdata["payer"], sdata["payTo"], sdata["amount"]) == (
        payer.address,
        provider.pay_to,
        str(int(settle["amount"])),
    )
    assert vdata["resource"] == provider.url("/paid")


async def test_settle_then_duplicate_events(
    make_fake_provider: ProviderFactory, fake_ledger: FakeLedger, database_url: str
) -> None:
    provider = await make_fake_provider()
    payer = FakePayer()
    fake_ledger.mint(payer.address, 1_000_000)
    unpaid = await provider.client.get("/paid")
    [offer] = decode_payment_required(unpaid.headers[PAYMENT_REQUIRED]).accepts
    accepted = msgspec.to_builtins(offer)
    body = {
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": accepted, "payload": payer.sign(offer)},
        "paymentRequirements": accepted,
    }
    first = await (await provider.client.post("/settle", json=body)).json()
    again = await (await provider.client.post("/settle", json=body)).json()
    assert first["success"] is True
    assert (again["success"], again["errorReason"]) == (False, "duplicate_settlement")
    records, events = await _rows(database_url)
    types = [events[str(r["id"])][0][0] for r in records]
    assert types == ["payment.settled", "payment.duplicate"]
    dup = events[str(records[1]["id"])][0][2]
    assert (dup["reason"], dup["transaction"]) == ("duplicate_settlement", first["transaction"])


async def test_reconciler_writes_payment_reconciled_with_the_settle_tenant(
    aiohttp_client: Any, fake_ledger: FakeLedger, database_url: str
) -> None:
    """A settlement journalled and signed but never broadcast (a crash): the reconciler lands and confirms it, and
    writes ``payment.reconciled`` for the tenant of the settle that claimed it, in that same transaction."""

    app = fake_app(database_url, fake_ledger)
    await aiohttp_client(app)
    payer = FakePayer()
    fake_ledger.mint(payer.address, 1_000_000)
    req = PaymentRequirements(
        scheme="exact",
        network=fake.NETWORK,
        amount="700",
        asset=fake.ASSET,
        pay_to=FakePayer().address,
        max_timeout_seconds=60,
    )
    accepted = msgspec.to_builtins(req)
    body = {
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": accepted, "payload": payer.sign(req)},
        "paymentRequirements": accepted,
    }
    decoded = decode_facilitator_request(json.dumps(body).encode())
    service = app[FACILITATOR]
    routed = service.route(decoded.payload, decoded.requirements)
    tenant = uuid.uuid4()
    row_id = await service.journal.claim(
        routed.adapter.replay_key(routed.ctx),
        digest=secrets.token_bytes(32),
        pay_to=req.pay_to,
        amount=700,
        x402_version=2,
        payload=dict(routed.ctx.payload),
        requirements=accepted,
        event_tenant=str(tenant),
    )
    assert row_id is not None
    prepared = await routed.adapter.prepare_settlement(routed.ctx)
    await Journal.mark_submitted(service.journal.pool, row_id, prepared)
    reconciler = app[RECONCILER]
    with system_scope("test: the reconciler runs in the system scope, as its loop in the app does"):
        assert (await reconciler.run_once(claim_grace=0)).get("rebroadcast") == 1
        _, before = await _rows(database_url)
        assert before == {}  # nothing final yet, no event
        assert (await reconciler.run_once(claim_grace=0)).get("confirmed") == 1
    conn = await asyncpg.connect(database_url)
    try:
        [event] = await conn.fetch("SELECT type, tenant_id, data FROM provider_events")
    finally:
        await conn.close()
    data = json.loads(event["data"])
    assert (event["type"], event["tenant_id"]) == ("payment.reconciled", tenant)
    assert (data["settlementId"], data["status"], data["amount"]) == (row_id, "success", "700")
    assert data["transaction"] == prepared.tx_id
