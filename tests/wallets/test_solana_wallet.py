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

from chains.config import AssetConfig, NetworkConfig
from tests.harness.deadrpc import dead_rpc
from tests.harness.faults import Faults, faulty
from tests.solana.conftest import NETWORK, PRICE, World, running_world
from tests.wallets.conftest import ADMIN, tenant_key_of
from wallets.service import WalletOptions
from x402.paywall import Offer, Paywall
from x402.service.app import create_app
from x402.service.appkeys import WALLETS, AppOptions
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.settings import Settings


@pytest.fixture
async def world() -> AsyncIterator[World]:
    from solders.token import ID as TOKEN_PROGRAM_ID

    async with running_world(TOKEN_PROGRAM_ID) as w:
        yield w


async def _setup(
    w: World,
    database_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    faults: Faults | None = None,
    *,
    keys_on: bool = False,
    rpc_urls: tuple[str, ...] | None = None,
    offer_extra: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any], Pubkey, Pubkey]:
    """A service (wallets + facilitator + paywalled /paid, behind ``faults``), a funded Solana wallet."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_level="warning",
        networks=(NetworkConfig(NETWORK, rpc_urls or (w.rpc.url,), assets=(AssetConfig(str(w.mint), symbol="USDC"),)),),
        svm_fee_payer_keys=(str(w.fee_payer),),
        master_key=secrets.token_hex(32),
        allow_private_outbound=True,
        reconcile_interval=0,
        settle_timeout=5.0,
        require_api_keys=keys_on,
        admin_token=ADMIN,
    )
    options = WalletOptions(fetch_timeout=5.0, reconcile_interval=3600)
    app = create_app(settings, options=AppOptions(wallet_options=options))
    if faults is not None:
        app.middlewares.insert(0, faulty(faults))

    async def paid(request: web.Request) -> web.Response:
        return web.json_response({"paid": True})

    app.router.add_get("/paid", paid)
    offer = Offer(
        amount=PRICE, asset=str(w.mint), network=NETWORK, pay_to=str(w.pay_to.pubkey()), extra=offer_extra or {}
    )
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
    return client, wallet, owner, src


@pytest.mark.parametrize("keys_on", [False, True], ids=["keys-off", "keys-on"])
async def test_solana_wallet_pays_a_paywalled_route(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: Any, keys_on: bool
) -> None:
    w = world
    client, wallet, owner, src = await _setup(w, database_url, tmp_path, aiohttp_client, keys_on=keys_on)
    r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": str(client.make_url("/paid"))})
    out = json.loads(await r.read())
    assert r.status == 200, out
    assert out["upstream"]["status"] == 200
    assert out["payment"]["paid"] is True
    assert out["payment"]["network"] == NETWORK
    assert out["payment"]["payer"] == str(owner)
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    assert w.rpc.token_balance(src) == 1_000_000 - PRICE
    r = await client.get(f"/v1/wallets/{wallet['id']}/balance")
    found = (await r.json())["balances"]
    assert r.status == 200, found
    assert [(b["network"], b["asset"], b["balance"]) for b in found] == [(NETWORK, str(w.mint), str(1_000_000 - PRICE))]


async def test_solana_settled_then_502_is_found_on_chain(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    w = world
    faults = Faults(mode="502")
    client, wallet, owner, src = await _setup(w, database_url, tmp_path, aiohttp_client, faults)
    url = str(client.make_url("/paid"))
    r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": url}, headers={"Idempotency-Key": "s1"})
    out = json.loads(await r.read())
    # the landed transaction carrying the wallet's message is found among the payer's signatures
    assert r.status == 200, out
    assert out["payment"]["status"] == "committed"
    assert out["upstream"]["status"] == 502
    signed = [
        sig
        for sig, rec in w.rpc.records.items()
        if owner in rec.tx.message.account_keys[: rec.tx.message.header.num_required_signatures]
    ]
    assert [str(s) for s in signed] == [out["payment"]["transaction"]]
    r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": url}, headers={"Idempotency-Key": "s1"})
    again = json.loads(await r.read())
    assert r.status == 200, again
    assert again["payment"]["paymentId"] == out["payment"]["paymentId"]
    assert len(faults.signatures) == 1
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    assert w.rpc.token_balance(src) == 1_000_000 - PRICE
    r = await client.get(f"/v1/wallets/{wallet['id']}/budget")
    budget = await r.json()
    assert (budget["spent"], budget["reserved"], budget["pending"]) == (str(PRICE), "0", "0"), budget


async def test_solana_unsettled_is_released_once_its_blockhash_expires(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    w = world
    faults = Faults(mode="nosettle_502")
    client, wallet, _, src = await _setup(w, database_url, tmp_path, aiohttp_client, faults)
    url = str(client.make_url("/paid"))
    r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": url}, headers={"Idempotency-Key": "s2"})
    out = json.loads(await r.read())
    assert r.status == 202, out
    assert out["code"] == "payment_pending"
    service = client.app[WALLETS]
    done = await service.reconcile()
    assert (done.committed, done.released, done.pending) == (0, 0, 1)
    w.rpc.svm.expire_blockhash()  # the payment can never land now
    done = await service.reconcile()
    assert (done.committed, done.released) == (0, 1)
    r = await client.get(f"/v1/wallets/{wallet['id']}/budget")
    budget = await r.json()
    assert (budget["spent"], budget["reserved"], budget["pending"]) == ("0", "0", "0"), budget
    assert w.rpc.token_balance(src) == 1_000_000
    assert len(faults.signatures) == 1


async def test_solana_wallet_fails_over_past_a_dead_first_rpc_url(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    w = world
    async with dead_rpc(w.rpc.url) as dead:
        client, wallet, _, src = await _setup(w, database_url, tmp_path, aiohttp_client, rpc_urls=(dead.url, w.rpc.url))
        for _ in range(2):  # each payment reads the mint and a blockhash: the dead URL fails first, then opens
            r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": str(client.make_url("/paid"))})
            out = json.loads(await r.read())
            assert r.status == 200, out
            assert out["payment"]["paid"] is True
        assert dead.hits >= 3
        assert client.app[WALLETS].svm_rpc[NETWORK].breaker_state() == ["open", "closed"]
        seen = dead.hits
        r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": str(client.make_url("/paid"))})
        assert r.status == 200, await r.text()
        assert dead.hits == seen  # the wallet service's pool remembers: the third payment skipped the dead URL
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == 3 * PRICE
    assert w.rpc.token_balance(src) == 1_000_000 - 3 * PRICE


async def test_solana_wallet_with_no_rpc_answering_is_503_and_keeps_its_budget(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    w = world
    async with dead_rpc(w.rpc.url) as a, dead_rpc(w.rpc.url, "502") as b:
        client, wallet, _, src = await _setup(w, database_url, tmp_path, aiohttp_client, rpc_urls=(a.url, b.url))
        r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": str(client.make_url("/paid"))})
        out = json.loads(await r.read())
        assert r.status == 503, out
        assert out["code"] == "chain_unavailable"
        assert r.headers["Content-Type"].startswith("application/problem+json")
    r = await client.get(f"/v1/wallets/{wallet['id']}/budget")
    budget = await r.json()
    assert (budget["spent"], budget["reserved"], budget["pending"]) == ("0", "0", "0"), budget
    assert w.rpc.token_balance(src) == 1_000_000


async def test_solana_wallet_refuses_a_memo_the_official_clients_refuse(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    w = world
    client, wallet, owner, src = await _setup(
        w, database_url, tmp_path, aiohttp_client, offer_extra={"memo": "m" * 257}
    )
    r = await client.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": str(client.make_url("/paid"))})
    out = json.loads(await r.read())
    assert r.status == 409, out
    assert out["code"] == "no_acceptable_offer"
    assert w.rpc.token_balance(src) == 1_000_000
    signers = [
        rec.tx.message.account_keys[: rec.tx.message.header.num_required_signatures] for rec in w.rpc.records.values()
    ]
    assert not any(owner in keys for keys in signers)
