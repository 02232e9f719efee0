"""Crash safety: kill -9 between broadcast and receipt, restart, the reconciler confirms; no second broadcast."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import aiohttp
import asyncpg
import msgspec
import pytest

from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.services import free_port


async def _row(url: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow("SELECT status, tx_id FROM settlements")
    finally:
        await conn.close()


async def _wait_row(url: str, want: set[str], timeout: float = 30.0) -> asyncpg.Record:
    deadline = time.monotonic() + timeout
    while True:
        row = await _row(url)
        if row is not None and row["status"] in want and row["tx_id"]:
            return row
        assert time.monotonic() < deadline, f"row never reached {want}: {row}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_kill9_between_broadcast_and_receipt(database_url: str) -> None:
    async with evm.own_devchain() as chain:
        key = evm.new_key()
        signer = evm.address_of(key)
        await evm.fund_eth(chain, signer)
        payment = await evm.new_payment(chain, 999)
        pay_to = payment.requirements.pay_to
        await evm.rpc(chain.rpc_url, "evm_setAutomine", False)
        env = {
            "DATABASE_URL": database_url,
            "X402_NETWORKS": evm.networks_env(chain),
            "X402_EVM_SIGNER_KEY": key,
            "X402_REQUIRE_API_KEYS": "false",
            "X402_SETTLE_TIMEOUT": "120",
            "X402_RECONCILE_INTERVAL": "0",
        }
        port = free_port()
        async with x402_serve(env=env, port=port) as first, aiohttp.ClientSession() as session:
            body = msgspec.json.encode(payment.body())
            request = asyncio.ensure_future(
                session.post(first.base_url + "/settle", data=body, headers={"Content-Type": "application/json"})
            )
            row = await _wait_row(database_url, {"submitted"})
            tx = row["tx_id"]
            # broadcast happened: the node holds the transaction, unmined
            deadline = time.monotonic() + 10
            while await evm.rpc(chain.rpc_url, "eth_getTransactionByHash", tx) is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert await evm.rpc(chain.rpc_url, "eth_getTransactionReceipt", tx) is None
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
            with contextlib.suppress(aiohttp.ClientError):
                await request
        await evm.rpc(chain.rpc_url, "evm_mine")
        env["X402_RECONCILE_INTERVAL"] = "0.2"
        async with x402_serve(env=env, port=free_port()):
            row = await _wait_row(database_url, {"confirmed"})
        assert row["tx_id"] == tx
        assert await evm.tx_count(chain, signer) == 1
        assert await evm.token_balance(chain, pay_to) == 999
