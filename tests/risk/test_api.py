"""The risk API: rule documents and address lists change what /verify decides, and every change is audited."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import asyncpg

from chains.evm.devchain import DevChain
from tests.harness import evm
from x402.service.app import create_app


async def test_rules_and_lists_drive_verify(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client = await aiohttp_client(create_app(evm.chain_settings(devchain, database_url, evm.new_key())))
    payer_key = await evm.funded_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    big = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 2_000_000))
    small = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 10))

    r = await client.post("/verify", json=big.body())
    assert (await r.json())["isValid"] is True

    # a custom condition in the expression language; bad ones are refused with a position
    r = await client.put("/v1/risk/rules", json={"custom": [{"name": "big", "when": "amount >", "action": "block"}]})
    problem = await r.json()
    assert r.status == 422, problem
    assert problem["code"] == "rule_syntax_error"
    rules = {"custom": [{"name": "big", "when": "amount > 1000000", "action": "block", "message": "too big"}]}
    r = await client.put("/v1/risk/rules", json=rules)
    assert r.status == 200, await r.text()
    r = await client.get("/v1/risk/rules")
    assert (await r.json())["rules"] == rules

    r = await client.post("/verify", json=big.body())
    out = await r.json()
    assert out["isValid"] is False
    assert out["invalidReason"] == "risk_blocked"
    r = await client.post("/verify", json=small.body())
    assert (await r.json())["isValid"] is True

    # a deny-listed payer is blocked whatever the amount
    r = await client.post("/v1/risk/lists/deny", json={"addresses": [big.payer], "label": "chargebacks"})
    assert (await r.json()) == {"list": "deny", "added": 1}
    r = await client.post("/verify", json=small.body())
    out = await r.json()
    assert out["invalidReason"] == "risk_blocked"
    assert any(f["code"].startswith("deny") for f in out["extensions"]["risk"]["flags"])
    r = await client.get("/v1/risk/lists")
    assert (await r.json())["deny"] == [big.payer.lower()]
    r = await client.post("/v1/risk/lists/nonsense", json={"addresses": ["0x1"]})
    assert (await r.json())["code"] == "risk_list_not_found"
    r = await client.request("DELETE", "/v1/risk/lists/deny", json={"addresses": [big.payer]})
    assert (await r.json()) == {"list": "deny", "removed": 1}
    r = await client.post("/verify", json=small.body())
    assert (await r.json())["isValid"] is True

    # every change is in the hash-chained audit log, which still verifies
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT action, object_type FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    assert [r["object_type"] for r in rows] == ["risk"] * 3
    env = dict(os.environ, DATABASE_URL=database_url)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "x402.service.cli", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
