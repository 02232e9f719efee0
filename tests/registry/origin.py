"""A local x402 origin for crawl tests: /.well-known/x402, /openapi.json and paid routes answering real 402s."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.registry.conftest import USDC, accept, bazaar
from x402.wire.codec import PAYMENT_REQUIRED, encode_header
from x402.wire.models import PaymentRequired


def sign_origin(key: str, origin: str) -> str:
    """An EIP-191 ownership proof of ``origin`` by ``key``."""
    return "0x" + bytes(
        Account.sign_message(encode_defunct(text=origin), private_key=key).signature
    ).hex().removeprefix("0x")


def _v2(
    url: str, pay_to: str, amount: str = "10000", with_bazaar: bool = True, extensions: dict[str, Any] | None = None
) -> web.Response:
    doc: dict[str, Any] = {
        "x402Version": 2,
        "error": "Payment required",
        "resource": {
            "url": url,
            "description": "Weather for a city",
            "mimeType": "application/json",
            "serviceName": "Weather",
            "tags": ["weather"],
        },
        "accepts": [accept(amount, pay_to=pay_to)],
    }
    if with_bazaar:
        doc["extensions"] = extensions or bazaar()
    if amount.isdigit():
        header = encode_header(msgspec.convert(doc, PaymentRequired))
    else:  # what a misconfigured server sends: the same header, a dollar amount in it
        import base64

        header = base64.b64encode(msgspec.json.encode(doc)).decode()
    return web.json_response({}, status=402, headers={PAYMENT_REQUIRED: header})


def origin_app(pay_to: str, proofs: list[str]) -> web.Application:
    """The origin's routes; ``proofs`` (read per request) go into both discovery documents."""
    app = web.Application()

    async def well_known(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "version": 1,
                "resources": [
                    "/paid/weather",
                    "POST /paid/translate",
                    "/paid/decimal",
                    "/free",
                    "https://elsewhere.example/x",
                ],
                "ownershipProofs": proofs,
            }
        )

    async def openapi(request: web.Request) -> web.Response:
        info = {"price": {"mode": "fixed", "currency": "USD", "amount": "0.01"}, "protocols": [{"x402": {}}]}
        return web.json_response(
            {
                "openapi": "3.1.0",
                "info": {"title": "origin", "version": "1"},
                "paths": {
                    "/paid/weather": {"get": {"summary": "Weather", "x-payment-info": info}},
                    "/paid/nobazaar": {"get": {"summary": "No schema", "responses": {"402": {"description": "pay"}}}},
                    "/free": {"get": {"summary": "free"}},
                },
                "x-discovery": {"ownershipProofs": proofs},
            }
        )

    async def weather(request: web.Request) -> web.Response:
        return _v2(str(request.url), pay_to)

    async def nobazaar(request: web.Request) -> web.Response:
        return _v2(str(request.url), pay_to, with_bazaar=False)

    async def decimal(request: web.Request) -> web.Response:
        return _v2(str(request.url), pay_to, amount="0.01")

    async def translate(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "x402Version": 1,
                "error": "X-PAYMENT header is required",
                "accepts": [
                    {
                        "scheme": "exact",
                        "network": "base-sepolia",
                        "maxAmountRequired": "2500",
                        "resource": str(request.url),
                        "description": "Translate text",
                        "mimeType": "application/json",
                        "payTo": pay_to,
                        "maxTimeoutSeconds": 60,
                        "asset": USDC,
                        "outputSchema": {"input": {"type": "http", "method": "POST", "bodyType": "json"}},
                        "extra": {"name": "USDC", "version": "2"},
                    }
                ],
            },
            status=402,
        )

    async def bad_bazaar(request: web.Request) -> web.Response:
        # invocable-looking (info.input is an object), but not a bazaar input type
        return _v2(str(request.url), pay_to, extensions={"bazaar": {"info": {"input": {"type": "grpc"}}}})

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async def free(request: web.Request) -> web.Response:
        return web.json_response({"free": True})

    app.router.add_get("/.well-known/x402", well_known)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/paid/weather", weather)
    app.router.add_get("/paid/nobazaar", nobazaar)
    app.router.add_get("/paid/decimal", decimal)
    app.router.add_post("/paid/translate", translate)
    app.router.add_get("/free", free)
    app.router.add_get("/paid/badbazaar", bad_bazaar)  # not listed: for POST /v1/resources/validate
    app.router.add_get("/broken", broken)
    return app
