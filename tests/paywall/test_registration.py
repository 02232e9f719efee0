"""The paywall's routes list themselves in the registry (discovery, /.well-known/x402) unless opted out.

The chain is not the point here: these run on the in-memory fake chain (chains/fake.py)."""

from __future__ import annotations

from chains import fake
from tests.paywall.conftest import AMOUNT, ProviderFactory


async def test_paid_routes_register_themselves(make_fake_provider: ProviderFactory) -> None:
    p = await make_fake_provider(public_url="https://shop.example")
    r = await p.client.get("/discovery/resources", params={"payTo": p.pay_to})
    page = await r.json()
    assert r.status == 200, page
    urls = sorted(item["resource"] for item in page["items"])
    assert urls == [f"https://shop.example{path}" for path in ("/fails", "/hooked", "/paid", "/raises")]
    item = next(i for i in page["items"] if i["resource"].endswith("/paid"))
    assert item["accepts"][0]["amount"] == str(AMOUNT)
    assert item["accepts"][0]["asset"] == fake.ASSET
    r = await p.client.get("/.well-known/x402")
    assert "GET https://shop.example/paid" in (await r.json())["resources"]


async def test_registration_opt_out(make_fake_provider: ProviderFactory) -> None:
    p = await make_fake_provider(public_url="https://quiet.example", register=False)
    r = await p.client.get("/discovery/resources", params={"payTo": p.pay_to})
    assert (await r.json())["items"] == []
