"""``x402 serve --dev``: anvil + test token come up; a dev-account payment signed with eth-account settles."""

from __future__ import annotations

import aiohttp

from chains.evm.devchain import DEV_TOKEN_ADDRESS, DevChain
from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.services import free_port


async def test_serve_dev_settles_a_dev_account_payment(database_url: str) -> None:
    port = free_port()
    env = {"DATABASE_URL": database_url, "X402_DEV_ANVIL_PORT": str(free_port()), "X402_REQUIRE_API_KEYS": "false"}
    async with x402_serve("--dev", env=env, port=port) as svc, aiohttp.ClientSession() as s:
        async with s.get(svc.base_url + "/.well-known/x402") as r:
            dev = (await r.json())["dev"]
        assert dev["network"] == "eip155:31337"
        assert dev["asset"] == {"address": DEV_TOKEN_ADDRESS, "name": "USD Coin", "version": "2", "decimals": 6}
        assert len(dev["payers"]) == 9
        assert "facilitatorKey" not in str(dev)
        async with s.get(svc.base_url + "/supported") as r:
            sup = await r.json()
        assert {"x402Version": 2, "scheme": "exact", "network": "eip155:31337"} in sup["kinds"]

        chain = DevChain(rpc_url=dev["rpcUrl"])
        payer = dev["payers"][0]  # dev account 1
        pay_to = evm.address_of(evm.new_key())
        payment = evm.sign_payment(chain, payer["privateKey"], evm.requirements(chain, pay_to, 10_000))
        assert payment.payer == payer["address"]
        async with s.post(svc.base_url + "/settle", json=payment.body()) as r:
            out = await r.json()
        assert out["success"] is True, out
        assert await evm.token_balance(chain, pay_to) == 10_000
        assert await evm.token_balance(chain, payer["address"]) == 1_000_000 * 10**6 - 10_000
    text = svc.text()
    assert "dev chain (anvil) is up" in text
    assert DEV_TOKEN_ADDRESS in text
