"""The README's "Metering and credits" examples run as written: gating by entitlement, an agent's top-up (on
anvil), and a provider's route charged in credits through the remote ledger."""

from __future__ import annotations

import functools
import re
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness.evm import funded_payer
from tests.metering.test_topup import CREDITS, _service
from tests.platform.conftest import bearer, new_key, new_tenant
from x402.client import PaymentPolicy, X402Client
from x402.paywall import CREDITS_REMAINING

README = Path(__file__).resolve().parents[2] / "README.md"


def snippets() -> list[str]:
    """The Python blocks of the README's "Metering and credits" section, in order."""
    text = README.read_text()
    section = re.search(r"^## Metering and credits\n(.*?)(?=^## )", text, re.M | re.S)
    assert section is not None
    return re.findall(r"```python\n(.*?)```", section.group(1), re.S)


def test_the_section_has_its_three_examples() -> None:
    blocks = snippets()
    assert len(blocks) == 3
    assert "async def export(" in blocks[0]
    assert "/topup?tenant=" in blocks[1]
    assert "def provider_app(" in blocks[2]


async def test_gating_by_entitlement_runs_as_written(client: Any) -> None:
    tenant = await new_tenant(client, "readme-gate")
    key = bearer((await new_key(client, tenant, ["admin", "verify"]))["key"])
    await client.put("/v1/meters/tokens", json={"aggregation": "sum"}, headers=key)
    plan = {"features": ["export"], "limits": {"tokens": 100}, "stop": "hard"}
    assert (await client.put("/v1/plans/pro", json=plan, headers=key)).status == 200
    assert (await client.put("/v1/customers/cus_r", json={"plan": "pro"}, headers=key)).status == 200
    scope: dict[str, Any] = {"aiohttp": aiohttp, "web": web, "SERVICE": str(client.make_url("")).rstrip("/")}
    scope["KEY"] = key
    exec(snippets()[0], scope)
    async with aiohttp.ClientSession() as http:
        await scope["export"](http, "cus_r", "req-1", 60)
        await scope["export"](http, "cus_r", "req-2", 50)  # reaches the hard limit
        with pytest.raises(web.HTTPPaymentRequired):
            await scope["export"](http, "cus_r", "req-3", 1)
    ent = await (await client.get("/v1/entitlements/cus_r", headers=key)).json()
    assert ent["meters"][0]["used"] == 110


async def test_a_route_charged_in_credits_runs_as_written(client: Any, aiohttp_client: Any) -> None:
    tenant = await new_tenant(client, "readme-credits")
    admin = bearer((await new_key(client, tenant, ["admin"]))["key"])
    verify = (await new_key(client, tenant, ["verify"]))["key"]
    r = await client.post("/v1/credits/alice/entries", json={"kind": "grant", "credits": 5}, headers=admin)
    assert r.status == 201
    scope: dict[str, Any] = {"__name__": "readme_provider"}
    exec(snippets()[2], scope)
    provider = await aiohttp_client(scope["provider_app"](str(client.make_url("")).rstrip("/"), verify, tenant))
    r = await provider.get("/report", headers={"X-Customer-Key": "ck_live_alice"})
    assert r.status == 200, await r.text()
    assert r.headers[CREDITS_REMAINING] == "2"
    r = await provider.get("/report", headers={"X-Customer-Key": "ck_live_alice"})
    problem = await r.json()
    assert (r.status, problem["code"], problem["balance"]) == (402, "insufficient_credits", 2)
    assert problem["topUpUrl"].endswith(f"/v1/credits/alice/topup?tenant={tenant}")
    assert (await provider.get("/report")).status == 401
    bal = await (await client.get("/v1/credits/alice", headers=admin)).json()
    assert bal["balance"] == 2


@pytest.mark.slow
async def test_an_agent_top_up_runs_as_written(
    devchain: DevChain, database_url: str, redis_url: str, aiohttp_client: Any
) -> None:
    client, _ = await _service(devchain, database_url, redis_url, aiohttp_client)
    tenant = await new_tenant(client, "readme-topup")
    # the dev token is not a default stablecoin: the client is allowed it, as a mainnet agent's USDC would be
    printed: list[tuple[Any, ...]] = []
    allowed = PaymentPolicy(allowed_assets=[devchain.token_address])
    scope: dict[str, Any] = {
        "aiohttp": aiohttp,
        "X402Client": functools.partial(X402Client, policy=allowed),
        "EvmSigner": EvmSigner,
        "agent_key": await funded_payer(devchain),
        "SERVICE": str(client.make_url("")).rstrip("/"),
        "customer": "agent-9",
        "tenant_id": tenant,
        "print": lambda *args: printed.append(args),
    }
    exec("async def snippet():\n" + textwrap.indent(snippets()[1], "    "), scope)
    await scope["snippet"]()
    assert printed == [(201, CREDITS)]
