"""kill -9 under mixed load: every verify, settle and verify-tx that got an answer is in ``payments`` with its
event in ``provider_events``, and nothing is there twice (a real ``x402 serve`` on anvil, SIGKILL mid-load)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import aiohttp
import asyncpg
import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.services import free_port

#: The event a record's answer causes, by (kind, status).
EVENTS = {
    ("verify", "valid"): "payment.verified",
    ("settle", "success"): "payment.settled",
    ("verify_tx", "verified"): "payment.verified",
}


async def _answered(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], pay_to: str, out: list[Any]
) -> None:
    """POST; an answer counts only when its whole body arrived."""
    async with session.post(url, json=body) as r:
        doc = await r.json()
    out.append((pay_to, r.status, doc))


async def _client(
    session: aiohttp.ClientSession, url: str, jobs: list[tuple[dict[str, Any], str]], out: list[Any]
) -> None:
    for body, pay_to in jobs:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            await _answered(session, url, body, pay_to, out)


@pytest.mark.slow
async def test_kill9_under_mixed_load_loses_and_doubles_nothing(devchain: DevChain, database_url: str) -> None:
    chain = devchain
    key, _signer = await evm.funded_signer(chain)
    payer_key = await evm.funded_payer(chain)
    # every request pays its own payTo, so each answer maps to exactly one record
    verify_jobs, settle_jobs, tx_jobs = [], [], []
    for _ in range(240):
        pay_to = evm.address_of(evm.new_key())
        verify_jobs.append((evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 10)).body(), pay_to))
    for _ in range(60):
        pay_to = evm.address_of(evm.new_key())
        settle_jobs.append((evm.sign_payment(chain, payer_key, evm.requirements(chain, pay_to, 7)).body(), pay_to))
    for _ in range(12):
        pay_to = evm.address_of(evm.new_key())
        tx = await evm.erc20_transfer(chain, payer_key, pay_to, 5)
        body = {
            "network": chain.network,
            "transaction": tx,
            "payTo": pay_to,
            "asset": chain.token_address,
            "minAmount": "5",
            "confirmations": 1,
        }
        tx_jobs.append((body, pay_to))
    env = {
        "DATABASE_URL": database_url,
        "X402_NETWORKS": evm.networks_env(chain),
        "X402_EVM_SIGNER_KEY": key,
        "X402_REQUIRE_API_KEYS": "false",
        "X402_RECONCILE_INTERVAL": "0",
        "X402_DEAD_LETTER_RETRY_INTERVAL": "0",
    }
    answers: dict[str, list[Any]] = {"verify": [], "settle": [], "verify_tx": []}
    async with x402_serve(env=env, port=free_port()) as first, aiohttp.ClientSession() as session:
        url = first.base_url
        clients = [
            *(
                asyncio.ensure_future(_client(session, url + "/verify", verify_jobs[i::6], answers["verify"]))
                for i in range(6)
            ),
            *(
                asyncio.ensure_future(_client(session, url + "/settle", settle_jobs[i::3], answers["settle"]))
                for i in range(3)
            ),
            asyncio.ensure_future(_client(session, url + "/v1/payments/verify-tx", tx_jobs, answers["verify_tx"])),
        ]
        # mid-load: enough answers of each kind, none of the clients finished
        deadline = time.monotonic() + 60
        while not (len(answers["verify"]) >= 40 and len(answers["settle"]) >= 8 and answers["verify_tx"]):
            assert time.monotonic() < deadline, {k: len(v) for k, v in answers.items()}
            await asyncio.sleep(0.005)
        first.proc.send_signal(signal.SIGKILL)
        await first.proc.wait()
        await asyncio.gather(*clients)
    got = {k: len(v) for k, v in answers.items()}
    assert got["verify"] < len(verify_jobs), got  # killed mid-load
    assert got["settle"] < len(settle_jobs), got
    # restart on the same database: it comes up and records again
    async with x402_serve(env=env, port=free_port()) as second, aiohttp.ClientSession() as session:
        body, pay_to = verify_jobs[-1]
        await _answered(session, second.base_url + "/verify", body, pay_to, answers["verify"])
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch("SELECT id, kind, status, pay_to, tx FROM payments")
        events = await conn.fetch("SELECT type, data->>'paymentId' AS pid FROM provider_events")
        letters = await conn.fetchval("SELECT count(*) FROM record_dead_letters")
    finally:
        await conn.close()
    assert letters == 0
    by_key: dict[tuple[str, str], list[Any]] = {}
    for rec in records:
        by_key.setdefault((rec["kind"], rec["pay_to"].lower()), []).append(rec)
    assert all(len(v) == 1 for v in by_key.values()), "a record written twice"
    events_of: dict[str, list[str]] = {}
    for ev in events:
        events_of.setdefault(ev["pid"], []).append(ev["type"])
    assert all(len(v) == 1 for v in events_of.values()), "an event written twice"
    assert {str(r["id"]) for r in records} == set(events_of), "a record without its event, or the reverse"
    checked = 0
    for kind, outs in answers.items():
        for pay_to, status, doc in outs:
            assert status == 200, doc
            [rec] = by_key[(kind, pay_to.lower())]  # answered, hence recorded, once
            if kind == "settle" and doc.get("success"):
                assert rec["status"] == "success"
                assert rec["tx"] == doc["transaction"]
            if kind == "verify":
                assert rec["status"] == ("valid" if doc["isValid"] else "invalid")
            if kind == "verify_tx":
                assert rec["status"] == doc["status"]
            expected = EVENTS.get((kind, rec["status"]))
            if expected is not None:
                assert events_of[str(rec["id"])] == [expected]
            checked += 1
    assert checked == sum(got.values()) + 1
