"""Saturation signals on /metrics of a running app: every family is there with sane values."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chains.evm.devchain import DevChain
from tests.harness import evm
from x402.service.app import create_app
from x402.service.saturation import BREAKER_STATES

FAMILIES = (
    "x402_db_pool_connections",
    "x402_db_pool_waiting",
    "x402_record_queue_depth",
    "x402_record_queue_age_seconds",
    "x402_rpc_breaker_state",
    "x402_rpc_breaker_open",
    "x402_settlements_pending",
    "x402_reconciler_backlog",
    "x402_webhook_queue_depth",
    "x402_webhook_queue_age_seconds",
    "x402_event_outbox_depth",
    "x402_event_outbox_age_seconds",
    "x402_signer_balance",
    "x402_signer_nonce_lag",
    "x402_event_loop_lag_seconds",
    "x402_saturation_sample_age_seconds",
    "x402_asyncio_tasks",
)


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``{sample name: [(labels, value), ...]}`` of a Prometheus text exposition."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


async def _scrape(client: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = await client.get("/metrics")
    assert r.status == 200
    return samples(await r.text())


@pytest.mark.slow
async def test_saturation_families_on_metrics(aiohttp_client: Any, devchain: DevChain, database_url: str) -> None:
    key, signer = await evm.funded_signer(devchain)
    settings = evm.chain_settings(devchain, database_url, key, saturation_interval=0.2, db_pool_size=7)
    client = await aiohttp_client(create_app(settings))
    payer_key = await evm.funded_payer(devchain)
    payment = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, evm.address_of(evm.new_key()), 1_000))
    r = await client.post("/settle", json=payment.body())
    assert (await r.json())["success"] is True
    deadline = time.monotonic() + 20
    while True:
        got = await _scrape(client)
        age = got["x402_saturation_sample_age_seconds"][0][1]
        if age >= 0 and got.get("x402_signer_balance"):
            break
        assert time.monotonic() < deadline, got.get("x402_saturation_sample_age_seconds")
        await asyncio.sleep(0.1)
    missing = [f for f in FAMILIES if f not in got]
    assert not missing, missing
    pool = {labels["state"]: v for labels, v in got["x402_db_pool_connections"]}
    assert pool["max"] == 7
    assert 0 <= pool["in_use"] <= 7
    assert pool["idle"] >= 0
    assert got["x402_db_pool_waiting"][0][1] == 0
    assert got["x402_record_queue_depth"][0][1] >= 0
    [(labels, bal)] = [s for s in got["x402_signer_balance"] if s[0]["signer"] == signer]
    assert labels["network"] == devchain.network
    assert bal > 10**15  # the funded signer still holds its ETH, less one settlement's gas
    assert [v for lb, v in got["x402_signer_nonce_lag"] if lb["signer"] == signer] == [0]
    host = devchain.rpc_url.split("//", 1)[1].split("/", 1)[0]
    states = {lb["state"]: v for lb, v in got["x402_rpc_breaker_state"] if lb["endpoint"] == host}
    assert states == {s: float(s == "closed") for s in BREAKER_STATES}
    assert [v for lb, v in got["x402_rpc_breaker_open"] if lb["endpoint"] == host] == [0.0]
    # the one settlement confirmed: nothing open, nothing for the reconciler
    assert all(v == 0 for _, v in got.get("x402_settlements_pending", []))
    assert got["x402_webhook_queue_depth"][0][1] == 0
    assert 0 <= got["x402_event_loop_lag_seconds"][0][1] < 5


async def test_asyncio_task_gauge_counts_live_tasks(aiohttp_client: Any, database_url: str) -> None:
    """``x402_asyncio_tasks`` is the live task count of the app's loop: it rises by the tasks started and falls back."""
    from x402.service.settings import Settings

    client = await aiohttp_client(create_app(Settings(database_url=database_url)))

    async def tasks() -> float:
        return (await _scrape(client))["x402_asyncio_tasks"][0][1]

    before = await tasks()
    assert before >= 2  # at least the saturation sampler and the lag ticker (plus the request being served)
    stop = asyncio.Event()
    extra = [asyncio.create_task(stop.wait()) for _ in range(25)]
    during = await tasks()
    stop.set()
    await asyncio.gather(*extra)
    after = await tasks()
    assert during - before == 25
    assert after == before
