"""Wallet key kinds come from chains/: built-in EVM and Solana, plus the kind a configured adapter brings (fake)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from chains.fake import FakeKeys
from tests.harness.paychain import PayChain
from tests.wallets.conftest import MASTER_KEY
from x402.service.app import create_app
from x402.service.settings import Settings


async def test_a_configured_adapter_brings_its_key_kind(service: TestClient[Any, Any], chain: PayChain) -> None:
    r = await service.post("/v1/wallets", json={"chains": [chain.kind, "evm", "solana"]})
    wallet = await r.json()
    assert r.status == 201, wallet
    assert sorted(wallet["addresses"]) == ["evm", "fake", "solana"]
    seed = "11" * 32
    r = await service.post("/v1/wallets", json={"import": {chain.kind: seed}})
    assert (await r.json())["addresses"]["fake"] == FakeKeys().imported(seed).address
    r = await service.post("/v1/wallets", json={"import": {chain.kind: "zz" + seed}})
    problem = await r.json()
    assert (r.status, problem["code"]) == (422, "invalid_key"), problem
    assert seed not in await r.text()  # a private key is never echoed


async def test_without_the_adapter_the_kind_is_unknown(database_url: str, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(Settings(database_url=database_url, master_key=MASTER_KEY)))
    r = await client.post("/v1/wallets", json={"chains": ["fake"]})
    problem = await r.json()
    assert (r.status, problem["code"]) == (422, "invalid_chain"), problem
    assert "evm and/or solana" in problem["detail"]
    r = await client.post("/v1/wallets", json={"chains": ["evm"]})
    assert r.status == 201, await r.text()
