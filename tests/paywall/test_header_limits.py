"""``X402_MAX_HEADER_BYTES`` is what limits a payment header: aiohttp's own 8,190-byte field limit is raised past it,
so a payment header over the setting reaches the paywall (402 ``header_too_large``), and a header even aiohttp
refuses is a problem+json 431 under the service's runner, not a plain-text 400."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from tests.harness.runner import ServiceTestServer
from tests.paywall.conftest import ProviderFactory
from x402.app import create_app
from x402.settings import Settings
from x402.wire.codec import PAYMENT_SIGNATURE, X_PAYMENT, decode_payment_required


def _error(headers: Any) -> str | msgspec.UnsetType:
    return decode_payment_required(headers["PAYMENT-REQUIRED"]).error


async def test_the_documented_16_kib_default_is_reachable(make_provider: ProviderFactory) -> None:
    p = await make_provider()  # the default limit, 16 KiB
    # 12 KB: over aiohttp's old default, under the setting: the codec reads it
    doc = b'{"x402Version":2,"pad":"' + b"x" * 9_000 + b'"}'
    header = base64.b64encode(doc).decode()
    assert 8_190 < len(header) <= 16 * 1024
    r = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert r.status == 402, await r.text()
    assert _error(r.headers) == "invalid_payload"
    # over the setting, under aiohttp's limit (twice the setting): the paywall says header_too_large
    for name in (PAYMENT_SIGNATURE, X_PAYMENT):
        r = await p.client.get("/paid", headers={name: "A" * 20_000})
        assert r.status == 402, await r.text()
        assert _error(r.headers) == "header_too_large"
        assert (await r.json())["error"] == "header_too_large"
    # a deep document inside the limit is refused by its depth, before any decoder runs
    deep = base64.b64encode(b"[" * 6_000 + b"]" * 6_000).decode()
    r = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: deep})
    assert _error(r.headers) == "json_too_deep"
    assert p.calls["paid"] == 0


async def test_absurd_headers_are_problem_json(settings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(ServiceTestServer(create_app(settings.with_(max_header_bytes=4096))))
    r = await client.get("/healthz", headers={"X-Big": "a" * 8_000})
    assert r.status == 200  # at least aiohttp's own default always fits
    r = await client.get("/healthz", headers={"X-Big": "a" * 40_000})
    assert r.status == 431
    assert r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "headers_too_large"
    r = await client.get("/healthz?q=" + "a" * 10_000)
    assert (r.status, (await r.json())["code"]) == (414, "uri_too_long")
