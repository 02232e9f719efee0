"""A wallet holding a Solana key pays a paywalled route on the SVM (LiteSVM behind the JSON-RPC shim)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from solders.pubkey import Pubkey

from tests.solana.conftest import NETWORK, PRICE, World, make_world
from tests.wallets.conftest import ADMIN, tenant_key_of
from x402.app import create_app
from x402.paywall import AppFacilitator, Offer, Paywall
from x402.settings import AssetConfig, NetworkConfig, Settings


@pytest.fixture
async def world() -> AsyncIterator[World]:
    from solders.token import ID as TOKEN_PROGRAM_ID

    w = await make_world(TOKEN_PROGRAM_ID)
    yield w
    await w.adapter.close()
    await w.rpc.stop()


@pytest.mark.parametrize("keys_on", [False, True], ids=["keys-off", "keys-on"])
async def test_solana_wallet_pays_a_paywalled_route(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: Any, keys_on: bool
) -> None:
    w = world
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_level="warning",
        networks=(NetworkConfig(NETWORK, (w.rpc.url,), assets=(AssetConfig(str(w.mint), symbol="USDC"),)),),
        svm_fee_payer_keys=(str(w.fee_payer),),
        master_key=secrets.token_hex(32),
        allow_private_outbound=True,
        reconcile_interval=0,
        settle_timeout=5.0,
        require_api_keys=keys_on,
        admin_token=ADMIN,
    )
    app = create_app(settings)

    async def paid(request: web.Request) -> web.Response:
        return web.json_response({"paid": True})

    app.router.add_get("/paid", paid)
    offer = Offer(amount=PRICE, asset=str(w.mint), network=NETWORK, pay_to=str(w.pay_to.pubkey()))
    Paywall(AppFacilitator(app), routes={("GET", "/paid"): offer}).setup(app)
    client = await aiohttp_client(app)
    if keys_on:
        client.session.headers["Authorization"] = f"Bearer {await tenant_key_of(client)}"

    r = await client.post("/v1/wallets", json={"name": "sol-agent", "chains": ["solana"], "policy": {}})
    wallet = await r.json()
    assert r.status == 201, wallet
    owner = Pubkey.from_string(wallet["addresses"]["solana"])
    src = w.rpc.create_ata(owner, w.mint, w.program)
    w.rpc.mint_to(w.mint, src, 1_000_000, w.mint_authority, w.program)

    r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": str(client.make_url("/paid"))})
    out = json.loads(await r.read())
    assert r.status == 200, out
    assert out["upstream"]["status"] == 200
    assert out["payment"]["paid"] is True
    assert out["payment"]["network"] == NETWORK
    assert out["payment"]["payer"] == str(owner)
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    assert w.rpc.token_balance(src) == 1_000_000 - PRICE
