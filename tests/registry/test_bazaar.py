"""The bazaar extension through the HTTP facilitator (anvil, or the fake chain where the chain is not the point)."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest

from chains.evm.devchain import DevChain
from chains.fake import FakeLedger, FakePayer
from tests.harness import evm
from tests.harness.fake import fake_app, fake_payment, fake_requirements
from tests.harness.wire import Payment
from tests.registry.conftest import bazaar
from x402.service.app import create_app
from x402.service.appkeys import BAZAAR
from x402.wire.models import PaymentPayload, ResourceInfo

RESOURCE_URL = "https://shop.example.com/api/weather"


def _ext_header(r: Any) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(r.headers["EXTENSION-RESPONSES"])))


def _with_bazaar(payment: Payment, extension: dict[str, Any] | None) -> dict[str, Any]:
    payload = msgspec.structs.replace(
        payment.payload,
        resource=ResourceInfo(url=RESOURCE_URL, description="Weather by city", service_name="Shop", tags=["weather"]),
        extensions=extension if extension is not None else msgspec.UNSET,
    )
    return {
        "x402Version": 2,
        "paymentPayload": msgspec.to_builtins(payload),
        "paymentRequirements": msgspec.to_builtins(payment.requirements),
    }


async def test_paid_payment_with_bazaar_lists_its_resource(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    signer = evm.new_key()
    await evm.fund_eth(devchain, evm.address_of(signer))
    settings = evm.chain_settings(devchain, database_url, signer, registry_probe_interval=0)
    app = create_app(settings)
    client = await aiohttp_client(app)
    payer = await evm.funded_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    payment = evm.sign_payment(devchain, payer, evm.requirements(devchain, pay_to, 7_000))

    r = await client.get("/supported")
    assert "bazaar" in (await r.json())["extensions"]

    r = await client.post("/verify", json=_with_bazaar(payment, bazaar()))
    body = await r.json()
    assert {k: v for k, v in body.items() if k != "extensions"} == {"isValid": True, "payer": payment.payer}
    assert "bazaar" not in body.get("extensions", {})  # extension answers travel in the header
    assert _ext_header(r)["bazaar"] == {"status": "success"}
    await app[BAZAAR].drain()

    r = await client.get("/discovery/resources")
    page = await r.json()
    (item,) = page["items"]
    assert item["resource"] == RESOURCE_URL
    assert item["type"] == "http"
    assert item["serviceName"] == "Shop"
    assert item["accepts"] == [msgspec.to_builtins(payment.requirements)]
    assert item["extensions"] == bazaar()
    assert item["metadata"]["settledCount"] == 0

    r = await client.post("/settle", json=_with_bazaar(payment, bazaar()))
    settled = await r.json()
    assert settled["success"] is True, settled
    assert _ext_header(r)["bazaar"] == {"status": "success"}
    await app[BAZAAR].drain()
    r = await client.get("/discovery/search", params={"query": "weather"})
    (found,) = (await r.json())["resources"]
    assert found["metadata"]["settledCount"] == 1


async def _funded_fake(database_url: str, aiohttp_client: Any) -> tuple[Any, FakePayer, Any]:
    """A service on the in-memory fake chain (the chain is not the point here), a funded payer, a 1,000 offer."""
    ledger = FakeLedger()
    client = await aiohttp_client(fake_app(database_url, ledger, registry_probe_interval=0))
    payer = FakePayer()
    ledger.mint(payer.address, 10**6)
    return client, payer, fake_requirements(FakePayer().address, 1_000)


async def test_invalid_payments_and_declarations_are_rejected(database_url: str, aiohttp_client: Any) -> None:
    client, payer, req = await _funded_fake(database_url, aiohttp_client)

    # a payment that does not verify (value differs from the requirement) is not catalogued
    bad = fake_payment(payer, req, value=1)
    r = await client.post("/verify", json=_with_bazaar(bad, bazaar()))
    assert (await r.json())["isValid"] is False
    assert _ext_header(r)["bazaar"] == {"status": "rejected", "rejectedReason": "payment_not_valid"}

    good = fake_payment(payer, req)
    r = await client.post("/verify", json=_with_bazaar(good, {"bazaar": {"info": {"output": {}}}}))
    assert (await r.json())["isValid"] is True
    assert _ext_header(r)["bazaar"] == {"status": "rejected", "rejectedReason": "missing_input"}

    r = await client.post("/verify", json=_with_bazaar(good, None))
    assert "bazaar" not in _ext_header(r)  # no declaration: no bazaar answer (the risk one is there)
    await client.app[BAZAAR].drain()
    r = await client.get("/discovery/resources")
    assert (await r.json())["pagination"]["total"] == 0


async def test_mcp_catalogue_key_and_route_template() -> None:
    from x402.service.registry.bazaar import BazaarRejected, draft_from_payment

    req = fake_requirements(FakePayer().address, 5)
    payment = fake_payment(FakePayer(), req)
    mcp = {"bazaar": {"info": {"input": {"type": "mcp", "tool": "search", "inputSchema": {"type": "object"}}}}}
    payload = msgspec.convert(_with_bazaar(payment, mcp)["paymentPayload"], type=PaymentPayload)
    draft = draft_from_payment(payload, req)
    assert (draft.url, draft.type, draft.tool, draft.method) == (RESOURCE_URL, "mcp", "search", "POST")

    templated = {"bazaar": {**bazaar()["bazaar"], "routeTemplate": "/api/:city"}}
    payload = msgspec.convert(_with_bazaar(payment, templated)["paymentPayload"], type=PaymentPayload)
    assert draft_from_payment(payload, req).url == "https://shop.example.com/api/:city"
    for template in ("/api/../admin", "/api/%2e%2e/x", "api", "/a/http://x"):
        bad = {"bazaar": {**bazaar()["bazaar"], "routeTemplate": template}}
        payload = msgspec.convert(_with_bazaar(payment, bad)["paymentPayload"], type=PaymentPayload)
        with pytest.raises(BazaarRejected) as err:
            draft_from_payment(payload, req)
        assert err.value.reason == "invalid_route_template", template


async def test_mcp_declarations_key_by_tool_name_and_read_the_legacy_tool(
    database_url: str, aiohttp_client: Any
) -> None:
    client, payer, req = await _funded_fake(database_url, aiohttp_client)

    def mcp(key: str, name: str) -> dict[str, Any]:
        return {"bazaar": {"info": {"input": {"type": "mcp", key: name, "inputSchema": {"type": "object"}}}}}

    # the current spelling, the legacy one for the same tool, and another tool at the same URL
    for declaration in (mcp("toolName", "search"), mcp("tool", "search"), mcp("toolName", "describe")):
        r = await client.post("/verify", json=_with_bazaar(fake_payment(payer, req), declaration))
        assert (await r.json())["isValid"] is True
        assert _ext_header(r)["bazaar"] == {"status": "success"}
        await client.app[BAZAAR].drain()

    r = await client.get("/discovery/resources", params={"type": "mcp"})
    items = (await r.json())["items"]
    assert sorted((i["resource"], i["metadata"]["toolName"]) for i in items) == [
        (RESOURCE_URL, "describe"),
        (RESOURCE_URL, "search"),
    ]
