"""This service's own paid routes: register_resources (paywall start-up), /.well-known/x402, x-payment-info."""

from __future__ import annotations

from typing import Any

from tests.registry.conftest import accept, bazaar, resource
from x402.service.app import create_app
from x402.service.appkeys import REGISTRY
from x402.service.registry import ResourceDraft, register_resources
from x402.service.registry.manifest import openapi_payment_info
from x402.service.settings import Settings


async def test_local_resources_publish_well_known_and_payment_info(aiohttp_client: Any, settings: Settings) -> None:
    app = create_app(settings)
    client = await aiohttp_client(app)
    base = str(client.make_url("")).rstrip("/")
    items: list[Any] = [
        resource(f"{base}/paid/report", accepts=[accept("50000"), accept("20000")], extensions=bazaar()),
        ResourceDraft(url=f"{base}/paid/ingest", method="POST", accepts=[accept("1000000")]),
    ]
    stored = await register_resources(app[REGISTRY], items)
    assert [(r.local, r.source, r.verification_status) for r in stored] == [(True, "local", "verified")] * 2
    again = await register_resources(app[REGISTRY], items)  # every process calls it at start-up
    assert [r.id for r in again] == [r.id for r in stored]

    r = await client.get("/.well-known/x402")
    wk = await r.json()
    assert wk["version"] == 1
    assert wk["resources"] == [f"POST {base}/paid/ingest", f"GET {base}/paid/report"]

    info = await openapi_payment_info(app)
    assert info == {
        ("get", "/paid/report"): {
            "price": {"mode": "fixed", "currency": "USD", "amount": "0.02"},
            "protocols": [{"x402": {}}],
        },
        ("post", "/paid/ingest"): {
            "price": {"mode": "fixed", "currency": "USD", "amount": "1"},
            "protocols": [{"x402": {}}],
        },
    }
