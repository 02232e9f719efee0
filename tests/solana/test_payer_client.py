"""Our Python payer on Solana: ``SvmSigner`` payloads, and ``X402Client`` paying a paywalled route on the SVM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from solders.keypair import Keypair

from chains.solana.signer import SvmSigner
from tests.harness.services import free_port
from tests.solana.conftest import NETWORK, PRICE, START_BALANCE, World
from tests.solana.test_facilitator import facilitator_settings, settlement_rows
from x402.app import create_app
from x402.client import PaymentPolicy, PaymentSigner, X402Client
from x402.errors import ChainUnavailable, PaymentRefused
from x402.paywall import Offer, Paywall, paid
from x402.paywall.inprocess import AppFacilitator
from x402.wire.codec import PAYMENT_REQUIRED, decode_payment_required

ClientFactory = Any


async def test_signer_payload_verifies(world: World) -> None:
    w = world
    signer = SvmSigner(w.payer, {"solana-devnet": w.rpc.url})  # v1 names are accepted for the RPC map
    assert isinstance(signer, PaymentSigner)
    assert signer.address == str(w.payer.pubkey())
    assert list(signer.networks) == ["solana:*"]
    reqs = w.requirements()
    assert signer.can_pay(reqs)
    payload = await signer.create_payload(reqs, 2)
    assert set(payload) == {"transaction"}
    out = await w.adapter.verify(w.ctx(payload))
    assert out.is_valid, out
    assert out.payer == signer.address

    # the mint is read once; a blockhash given in the offer is used as is (no RPC call at all)
    seen = len(w.rpc.calls)
    given = w.rpc.svm.latest_blockhash()
    with_hash = w.requirements(extra={"feePayer": str(w.fee_payer.pubkey()), "recentBlockhash": str(given)})
    again = await signer.create_payload(with_hash, 1)
    assert w.rpc.calls[seen:] == []
    assert (await w.adapter.verify(w.ctx(again, with_hash))).is_valid


async def test_signer_refusals(world: World) -> None:
    w = world
    signer = SvmSigner(str(w.payer), {NETWORK: w.rpc.url})  # a base58 secret key works too
    fee_payer = str(w.fee_payer.pubkey())
    assert not signer.can_pay(w.requirements(extra={}))  # no feePayer
    assert not signer.can_pay(w.requirements(extra={"feePayer": signer.address}))  # we would pay the fees
    assert not signer.can_pay(w.requirements(extra={"feePayer": fee_payer, "memo": "x" * 257}))
    assert not signer.can_pay(w.requirements(scheme="upto"))
    assert not signer.can_pay(w.requirements(network="solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"))  # no RPC URL
    assert not signer.can_pay(w.requirements(pay_to="0x" + "11" * 20))
    with pytest.raises(PaymentRefused):
        await signer.create_payload(w.requirements(extra={}), 2)
    with pytest.raises(PaymentRefused) as info:  # not a mint
        await signer.create_payload(w.requirements(asset=str(Keypair().pubkey())), 2)
    assert info.value.code == "invalid_asset"
    dead = SvmSigner(w.payer, {NETWORK: f"http://127.0.0.1:{free_port()}"}, rpc_timeout=2.0)
    with pytest.raises(ChainUnavailable):
        await dead.create_payload(w.requirements(), 2)
    with pytest.raises(ValueError):
        SvmSigner(w.payer, {"eip155:8453": w.rpc.url})


async def test_client_pays_paywalled_route_on_svm(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    w = world
    app = create_app(facilitator_settings(w, database_url, tmp_path))
    served = []

    async def paid(request: web.Request) -> web.Response:
        served.append(request.path)
        return web.json_response({"ok": True})

    app.router.add_get("/paid", paid)
    # no feePayer in the offer: the paywall fills it in from the facilitator's /supported, as official servers do
    offer = Offer(
        amount=PRICE,
        asset=str(w.mint),
        network=NETWORK,
        pay_to=str(w.pay_to.pubkey()),
        description="paid on solana",
    )
    Paywall(AppFacilitator(app), routes={("GET", "/paid"): [offer]}).setup(app)
    client = await aiohttp_client(app)

    signer = SvmSigner(w.payer, {NETWORK: w.rpc.url})
    payer = X402Client(client.session, [signer], PaymentPolicy(allowed_assets=[str(w.mint)]))
    url = str(client.make_url("/paid"))
    unpaid = await client.get("/paid")
    assert unpaid.status == 402
    required = decode_payment_required(unpaid.headers[PAYMENT_REQUIRED])
    assert required.accepts[0].extra["feePayer"] == str(w.fee_payer.pubkey())
    res = await payer.get(url)
    assert res.status == 200, res.text()
    assert res.json() == {"ok": True}
    assert served == ["/paid"]
    assert res.x402_version == 2
    assert res.payer == signer.address
    assert res.paid is not None
    assert res.paid.amount == str(PRICE)
    assert res.settlement is not None
    assert res.settlement.success is True
    assert res.settlement.network == NETWORK
    assert res.settlement.payer == signer.address
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
    assert w.rpc.token_balance(w.ata(w.payer.pubkey())) == START_BALANCE - PRICE
    (row,) = await settlement_rows(database_url)
    assert (row["status"], row["tx_id"]) == ("confirmed", res.settlement.transaction)

    # the default policy refuses a mint that is not a default stablecoin, and nothing is paid
    strict = X402Client(client.session, [signer])
    with pytest.raises(PaymentRefused):
        await strict.get(url)
    assert served == ["/paid"]
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE


async def test_paid_decorator_route_gets_the_fee_payer(
    world: World, database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    """Only ``@paid`` (no ``routes=``) under the default ``setup(app)``: start-up still reads /supported."""
    w = world
    app = create_app(facilitator_settings(w, database_url, tmp_path))
    offer = Offer(amount=PRICE, asset=str(w.mint), network=NETWORK, pay_to=str(w.pay_to.pubkey()))

    @paid(offer, description="decorated on solana")
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"decorated": True})

    app.router.add_get("/deco", handler)
    Paywall(AppFacilitator(app)).setup(app)
    client = await aiohttp_client(app)
    unpaid = await client.get("/deco")
    assert unpaid.status == 402
    required = decode_payment_required(unpaid.headers[PAYMENT_REQUIRED])
    assert required.accepts[0].extra["feePayer"] == str(w.fee_payer.pubkey())
    signer = SvmSigner(w.payer, {NETWORK: w.rpc.url})
    payer = X402Client(client.session, [signer], PaymentPolicy(allowed_assets=[str(w.mint)]))
    res = await payer.get(str(client.make_url("/deco")))
    assert res.status == 200, res.text()
    assert res.settlement is not None
    assert res.settlement.success is True
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE
