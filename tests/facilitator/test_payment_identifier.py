"""The payment-identifier extension on the facilitator, over the real chain and Postgres."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.services import free_port
from x402.service.appkeys import FACILITATOR, RECONCILER
from x402.service.facilitator.reconciler import PURGE_EVERY
from x402.service.settings import Settings, load_settings
from x402.wire import payment_identifier as pid


def with_id(payment: evm.Payment, value: str | None, *, required: bool = False) -> evm.Payment:
    """The payment with a payment-identifier extension (as a client echoes the server's declaration)."""
    ext = pid.declaration(required)
    if value is not None:
        ext = {**ext, "info": {**ext["info"], "id": value}}
    payload = msgspec.structs.replace(payment.payload, extensions={pid.KEY: ext})
    return evm.Payment(payload=payload, requirements=payment.requirements, payer=payment.payer)


async def _client(aiohttp_client: Any, chain: DevChain, database_url: str) -> tuple[Any, str]:
    return await evm.facilitator_client(aiohttp_client, chain, database_url)


async def test_supported_lists_the_extension(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client, _ = await _client(aiohttp_client, devchain, database_url)
    r = await client.get("/supported")
    assert "payment-identifier" in (await r.json())["extensions"]


async def test_same_id_same_purchase_gets_the_original_success(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, signer = await _client(aiohttp_client, devchain, database_url)
    payer_key, req = await evm.payer_and_offer(devchain, 250)
    pay_to = req.pay_to
    first = with_id(evm.sign_payment(devchain, payer_key, req), "pay_retry_of_one_purchase_01")
    r = await client.post("/settle", json=first.body())
    out = await r.json()
    assert out["success"] is True, out
    sent = await evm.tx_count(devchain, signer)

    # the identical payment again under its id: the original success (an explicit retry)
    r = await client.post("/settle", json=first.body())
    assert await r.json() == out
    # a re-signed authorization of the same purchase under the same id: the original answer, nothing moves
    resigned = with_id(evm.sign_payment(devchain, payer_key, req), "pay_retry_of_one_purchase_01")
    r = await client.post("/verify", json=resigned.body())
    assert (await r.json())["isValid"] is True
    r = await client.post("/settle", json=resigned.body())
    again = await r.json()
    assert (again["success"], again["transaction"]) == (True, out["transaction"]), again
    assert await evm.tx_count(devchain, signer) == sent
    assert await evm.token_balance(devchain, pay_to) == 250
    # the re-signed authorization was never used: it is still spendable by the payer, not by us
    bare = msgspec.structs.replace(resigned.payload, extensions=msgspec.UNSET)
    r = await client.post("/verify", json=evm.Payment(bare, req, resigned.payer).body())
    assert (await r.json())["isValid"] is True

    # another payer presenting the id (same purchase): not theirs, no success, nothing moves
    stranger = with_id(
        evm.sign_payment(devchain, await evm.funded_payer(devchain), req), "pay_retry_of_one_purchase_01"
    )
    r = await client.post("/verify", json=stranger.body())
    assert (await r.json())["isValid"] is True  # its own authorization is valid, checked on its own
    r = await client.post("/settle", json=stranger.body())
    other = await r.json()
    assert (other["success"], other["errorReason"], other["transaction"]) == (
        False,
        "duplicate_settlement",
        out["transaction"],
    )
    assert await evm.tx_count(devchain, signer) == sent
    assert await evm.token_balance(devchain, pay_to) == 250

    # the identical payment without the id is a plain re-send: no second success
    plain = evm.Payment(msgspec.structs.replace(first.payload, extensions=msgspec.UNSET), req, first.payer)
    r = await client.post("/settle", json=plain.body())
    dup = await r.json()
    assert (dup["success"], dup["errorReason"], dup["transaction"]) == (
        False,
        "duplicate_settlement",
        out["transaction"],
    )


async def test_same_id_other_purchase_is_409_and_missing_required_id_is_400(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, signer = await _client(aiohttp_client, devchain, database_url)
    payer_key = await evm.funded_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    the_id = "pay_0123456789abcdef_conflict"
    first = with_id(evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 40)), the_id)
    r = await client.post("/verify", json=first.body())
    assert (await r.json())["isValid"] is True
    other = with_id(evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 41)), the_id)
    for path in ("/verify", "/settle"):
        r = await client.post(path, json=other.body())
        assert r.status == 409, await r.text()
        assert r.content_type == "application/problem+json"
        assert (await r.json())["code"] == "payment_identifier_conflict"
    # another payee under the same id: also another purchase
    elsewhere = with_id(
        evm.sign_payment(devchain, payer_key, evm.requirements(devchain, evm.address_of(evm.new_key()), 40)), the_id
    )
    r = await client.post("/settle", json=elsewhere.body())
    assert r.status == 409
    assert await evm.tx_count(devchain, signer) == 0

    missing = with_id(
        evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 40)), None, required=True
    )
    for path in ("/verify", "/settle"):
        r = await client.post(path, json=missing.body())
        assert r.status == 400
        assert (await r.json())["code"] == "payment_identifier_required"
    for bad in ("short_id", "pay_has spaces_and_more", "x" * 129, "pay_ünïcödé_0123456789"):
        malformed = with_id(evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 40)), bad)
        r = await client.post("/settle", json=malformed.body())
        assert r.status == 400, bad
        assert (await r.json())["code"] == "invalid_payment_identifier"
    assert await evm.tx_count(devchain, signer) == 0

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT coalesce(tenant_id::text, '') AS tenant, id FROM payment_identifiers")
    finally:
        await conn.close()
    assert [(r["tenant"], r["id"]) for r in rows] == [("", the_id)]


TENANT_A, TENANT_B = str(uuid.uuid4()), str(uuid.uuid4())


async def test_ids_are_tenant_scoped(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client, signer = await _client(aiohttp_client, devchain, database_url)
    service = client.app[FACILITATOR]
    payer_key = await evm.funded_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    the_id = "pay_shared_between_tenants_1"
    a = with_id(evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 5)), the_id)
    b = with_id(evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 6)), the_id)
    ra = await service.settle(a.payload, a.requirements, tenant_id=TENANT_A)
    rb = await service.settle(b.payload, b.requirements, tenant_id=TENANT_B)  # another tenant: not a conflict
    assert ra.success
    assert rb.success
    assert ra.transaction != rb.transaction
    assert await evm.token_balance(devchain, pay_to) == 11
    assert await evm.tx_count(devchain, signer) == 2


async def test_concurrent_resigned_retries_under_one_id_pay_once(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, signer = await _client(aiohttp_client, devchain, database_url)
    payer_key, req = await evm.payer_and_offer(devchain, 9)
    pay_to = req.pay_to
    payments = [with_id(evm.sign_payment(devchain, payer_key, req), "pay_concurrent_retries_0001") for _ in range(8)]
    responses = await asyncio.gather(*(client.post("/settle", json=p.body()) for p in payments))
    results = [await r.json() for r in responses]
    assert all(r["success"] for r in results), results
    assert len({r["transaction"] for r in results}) == 1
    assert await evm.tx_count(devchain, signer) == 1
    assert await evm.token_balance(devchain, pay_to) == 9


@pytest.mark.slow
async def test_one_id_across_two_processes_pays_once(devchain: DevChain, database_url: str) -> None:
    key = evm.new_key()
    signer = evm.address_of(key)
    await evm.fund_eth(devchain, signer)
    payer_key, req = await evm.payer_and_offer(devchain, 17)
    pay_to = req.pay_to
    payments = [with_id(evm.sign_payment(devchain, payer_key, req), "pay_two_processes_one_id_1") for _ in range(10)]
    env = {
        "DATABASE_URL": database_url,
        "X402_NETWORKS": evm.networks_env(devchain),
        "X402_EVM_SIGNER_KEY": key,
        "X402_REQUIRE_API_KEYS": "false",
        "X402_RECONCILE_INTERVAL": "0",
    }
    async with (
        x402_serve(env=env, port=free_port()) as a,
        x402_serve(env=env, port=free_port()) as b,
        aiohttp.ClientSession() as session,
    ):

        async def one(i: int) -> dict[str, Any]:
            base = (a, b)[i % 2].base_url
            async with session.post(base + "/settle", json=payments[i].body()) as r:
                assert r.status == 200, await r.text()
                doc: dict[str, Any] = await r.json()
                return doc

        results = await asyncio.gather(*(one(i) for i in range(10)))
    assert all(r["success"] for r in results), results
    assert len({r["transaction"] for r in results}) == 1
    assert await evm.tx_count(devchain, signer) == 1
    assert await evm.token_balance(devchain, pay_to) == 17


async def test_identifiers_past_their_retention_are_purged(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    """``X402_PAYMENT_IDENTIFIER_TTL`` days (here 2): the reconciler's loop forgets older ids, of every tenant."""
    client, _ = await evm.facilitator_client(aiohttp_client, devchain, database_url, payment_identifier_ttl_days=2.0)
    reconciler = client.server.app[RECONCILER]
    a, b = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:

        async def bind(tenant: uuid.UUID | None, value: str, days: float) -> None:
            await conn.execute(
                """INSERT INTO payment_identifiers (tenant_id, id, fingerprint, created_at)
                   VALUES ($1, $2, '\\x00', now() - make_interval(secs => $3))""",
                tenant,
                value,
                days * 86400,
            )

        for tenant in (a, b, None):
            await bind(tenant, "pay_old_one_of_the_tenant", 3)
            await bind(tenant, "pay_new_one_of_the_tenant", 1)
        assert await reconciler.purge_identifiers(now=1000.0) == 3
        rows = await conn.fetch("SELECT tenant_id, id FROM payment_identifiers ORDER BY 1, 2")
        assert {(r["tenant_id"], r["id"]) for r in rows} == {(t, "pay_new_one_of_the_tenant") for t in (a, b, None)}
        # at most one purge per PURGE_EVERY seconds
        await bind(a, "pay_aged_meanwhile_0000", 5)
        assert await reconciler.purge_identifiers(now=1000.0 + PURGE_EVERY - 1) == 0
        assert await reconciler.purge_identifiers(now=1000.0 + PURGE_EVERY) == 1
    finally:
        await conn.close()


def test_identifier_retention_defaults_to_30_days() -> None:
    """0 keeps them forever."""
    assert Settings().payment_identifier_ttl_days == 30.0
    assert load_settings({"X402_PAYMENT_IDENTIFIER_TTL": "0"}).payment_identifier_ttl_days == 0.0
