"""Graceful shutdown: SIGTERM with a slow paid request in flight stops accepting, lets it finish and record, exits 0."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import time

import aiohttp
import asyncpg
import msgspec
import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.rpcproxy import rpc_proxy
from tests.harness.services import free_port

BOUND = 15.0


@pytest.mark.slow
async def test_sigterm_drains_a_slow_settlement_in_flight(devchain: DevChain, database_url: str) -> None:
    key, _signer = await evm.funded_signer(devchain)
    payer_key = await evm.funded_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    env = {
        "DATABASE_URL": database_url,
        "X402_EVM_SIGNER_KEY": key,
        "X402_REQUIRE_API_KEYS": "false",
        "X402_SHUTDOWN_TIMEOUT": str(BOUND),
        "X402_LOG_LEVEL": "info",
        "X402_RPC_TIMEOUT": "30",
    }
    # the node takes its time over the broadcast: the settlement is mid-flight when SIGTERM arrives
    async with rpc_proxy(devchain.rpc_url, set(), delay={"eth_sendRawTransaction": 3.0}) as proxy:
        env["X402_NETWORKS"] = evm.networks_env(dataclasses.replace(devchain, rpc_url=proxy.url))
        async with x402_serve(env=env, port=free_port()) as svc, aiohttp.ClientSession() as session:
            payment = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 4_321))
            body = msgspec.json.encode(payment.body())
            request = asyncio.ensure_future(
                session.post(svc.base_url + "/settle", data=body, headers={"Content-Type": "application/json"})
            )
            await asyncio.wait_for(proxy.held.wait(), 60)
            signalled = time.monotonic()
            svc.proc.send_signal(signal.SIGTERM)
            response = await request
            assert response.status == 200, await response.text()
            answer = await response.json()
            assert answer["success"] is True, answer
            # stopped accepting: a new connection after SIGTERM is refused while the old request drains
            async with aiohttp.ClientSession() as fresh:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await fresh.get(svc.base_url + "/healthz")
            code = await svc.stop(signal.SIGTERM, BOUND + 15)
            took = time.monotonic() - signalled
    assert code == 0, svc.text()
    assert took < BOUND + 10, took
    # recorded, nothing half-done: the journal row is confirmed with the answered transaction
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, tx_id FROM settlements")
    finally:
        await conn.close()
    assert [(r["status"], r["tx_id"]) for r in rows] == [("confirmed", answer["transaction"])]
    receipt = await evm.wait_receipt(devchain, answer["transaction"])
    assert int(receipt["status"], 16) == 1
    events = [json.loads(ln) for ln in svc.text().splitlines() if ln.startswith("{")]
    drained = [e for e in events if e["event"] == "shutdown_drained"]
    assert len(drained) == 1
    assert drained[0]["took_s"] < BOUND
