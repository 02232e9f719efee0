"""A provider's own app lists itself: /.well-known/x402 from Paywall.setup, registration with a remote registry
(a paywall on RemoteFacilitator), and the service's own /demo/paid listed when X402_PUBLIC_URL is set."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chains import fake
from chains.evm.devchain import DevChain
from chains.fake import FakeLedger
from tests.harness import evm
from tests.harness.fake import fake_app
from tests.harness.services import free_port
from tests.registry.origin import sign_origin
from x402.facilitator.remote import RemoteFacilitator
from x402.paywall import Offer, Paywall
from x402.service.app import create_app
from x402.service.demo import DEMO_PATH


async def _ok(r: Any) -> Any:
    body = await r.json()
    assert r.status == 200, body
    return body


async def test_provider_app_serves_well_known_and_lists_itself_remotely(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, fake_ledger: FakeLedger
) -> None:
    service = await aiohttp_server(
        fake_app(database_url, fake_ledger, registry_probe_interval=0, allow_private_outbound=True)
    )
    registry = str(service.make_url("")).rstrip("/")
    key = evm.new_key()
    pay_to = evm.address_of(key)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    offer = Offer(amount=5000, asset=fake.ASSET, network=fake.NETWORK, pay_to=pay_to, description="Forecast")

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"forecast": "sun"})

    app = web.Application()
    app.router.add_get("/forecast", handler)
    app.router.add_post("/translate", handler)
    paywall = Paywall(
        RemoteFacilitator(registry),
        routes={("GET", "/forecast"): offer, ("POST", "/translate"): offer},
        public_url=origin,
        ownership_proofs=[sign_origin(key, origin)],
        registry=registry,
    )
    paywall.setup(app, well_known=True)
    provider = await aiohttp_server(app, port=port)
    client = await aiohttp_client(service)

    doc = await _ok(await client.session.get(str(provider.make_url("/.well-known/x402"))))
    assert doc["resources"] == [f"GET {origin}/forecast", f"POST {origin}/translate"]
    assert doc["ownershipProofs"] == [sign_origin(key, origin)]

    page = await _ok(await client.get("/discovery/resources", params={"payTo": pay_to}))
    listed = {(i["resource"], i["metadata"]["method"]) for i in page["items"]}
    assert listed == {(f"{origin}/forecast", "GET"), (f"{origin}/translate", "POST")}
    (forecast,) = [i for i in page["items"] if i["resource"].endswith("/forecast")]
    assert forecast["accepts"][0]["amount"] == "5000"
    assert forecast["description"] == "Forecast"

    # the registry's validate endpoint finds the provider's ownership proof on its well-known document
    report = await _ok(await client.post("/v1/resources/validate", json={"url": f"{origin}/forecast"}))
    assert report["checks"]["ownership"] == {"ok": True, "proven": {pay_to: "eip191"}}
    assert report["checks"]["bazaar"]["reason"] == "missing_bazaar_extension"


async def test_without_registry_nothing_is_sent(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, fake_ledger: FakeLedger
) -> None:
    service = await aiohttp_server(fake_app(database_url, fake_ledger, registry_probe_interval=0))
    offer = Offer(amount=5000, asset=fake.ASSET, network=fake.NETWORK, pay_to=evm.address_of(evm.new_key()))
    app = web.Application()
    Paywall(
        RemoteFacilitator(str(service.make_url(""))), routes={("GET", "/x"): offer}, public_url="https://a.example"
    ).setup(app)
    provider = await aiohttp_client(app)
    assert (await provider.get("/.well-known/x402")).status == 404  # not asked for
    client = await aiohttp_client(service)
    assert (await _ok(await client.get("/discovery/resources")))["pagination"]["total"] == 0


async def test_demo_route_listed_with_public_url(
    aiohttp_client: Any, devchain: DevChain, database_url: str, facilitator_key: str
) -> None:
    state = {
        "network": devchain.network,
        "token_address": devchain.token_address,
        "token_name": devchain.token_name,
        "token_version": devchain.token_version,
    }
    public = "https://x402.example.org"
    settings = evm.chain_settings(
        devchain, database_url, facilitator_key, dev_state=state, public_url=public, registry_probe_interval=0
    )
    client = await aiohttp_client(create_app(settings))
    doc = await _ok(await client.get("/.well-known/x402"))
    assert f"GET {public}{DEMO_PATH}" in doc["resources"]
    page = await _ok(await client.get("/discovery/resources"))
    assert [i["resource"] for i in page["items"]] == [public + DEMO_PATH]
    r = await client.get(DEMO_PATH)
    assert r.status == 402


async def test_a_route_the_registry_refuses_does_not_stop_the_others(
    aiohttp_client: Any, database_url: str, fake_ledger: FakeLedger
) -> None:
    from x402.paywall import PaidRoute
    from x402.service.facilitator.inprocess import AppFacilitator

    app = fake_app(database_url, fake_ledger, registry_probe_interval=0)
    offer = Offer(amount=5000, asset=fake.ASSET, network=fake.NETWORK, pay_to=evm.address_of(evm.new_key()))

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/long", handler)
    app.router.add_get("/fine", handler)
    routes: dict[tuple[str, str], PaidRoute | Offer] = {
        ("GET", "/long"): PaidRoute((offer,), description="x" * 3000),
        ("GET", "/fine"): offer,
    }
    Paywall(AppFacilitator(app), routes=routes, public_url="https://shop.example").setup(app)
    client = await aiohttp_client(app)
    page = await _ok(await client.get("/discovery/resources"))
    assert [i["resource"] for i in page["items"]] == ["https://shop.example/fine"]
