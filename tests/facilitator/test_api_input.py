"""Facilitator HTTP input handling: malformed bodies are 400 problems; unroutable payments are values."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.wire import UNCONFIGURED_REQUIREMENTS
from x402.service.app import create_app
from x402.service.settings import Settings

REQ = UNCONFIGURED_REQUIREMENTS
PAYLOAD = {"x402Version": 2, "accepted": REQ, "payload": {"signature": "0x00", "authorization": {}}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"[1,2]", "invalid_payload"),
        (b'{"x402Version": 2}', "invalid_payload"),
        (b'{"x402Version": 2, "paymentPayload": {"x402Version": 2}}', "invalid_payment_requirements"),
        (b'{"paymentPayload": {"x402Version": 7}, "paymentRequirements": {}}', "invalid_x402_version"),
        (
            b'{"paymentPayload": {"x402Version": 2, "accepted": null, "payload": {}}, "paymentRequirements": {}}',
            "invalid_payload",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/verify", "/settle"])
async def test_malformed_bodies_are_400(
    settings: Settings, aiohttp_client: Any, path: str, body: bytes, code: str
) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    problem = await r.json()
    assert r.status == 400, problem
    assert problem["code"] == code
    assert r.content_type == "application/problem+json"


async def test_unconfigured_network_is_a_negative_result(settings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(settings))
    body = {"x402Version": 2, "paymentPayload": PAYLOAD, "paymentRequirements": REQ}
    r = await client.post("/verify", json=body)
    assert r.status == 200
    assert (await r.json()) == {
        "isValid": False,
        "invalidReason": "invalid_network",
        "invalidMessage": "network 'eip155:8453' is not supported by this facilitator",
    }
    r = await client.post("/settle", json=body)
    out = await r.json()
    assert r.status == 200
    assert out["success"] is False
    assert out["errorReason"] == "invalid_network"
    assert out["transaction"] == ""
    assert out["network"] == "eip155:8453"


async def test_wrong_content_type_and_oversized_body(settings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(settings.with_(max_body_bytes=4096)))
    r = await client.post("/verify", data=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400
    assert (await r.json())["code"] == "unsupported_media_type"
    r = await client.post("/verify", data=b"{" + b" " * 10_000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status == 413
    assert (await r.json())["code"] == "payload_too_large"


async def test_verify_tx_input_errors(settings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/payments/verify-tx", json={"network": "eip155:8453"})
    assert r.status == 400
    assert (await r.json())["code"] == "invalid_payload"
    good = {
        "network": "base",
        "transaction": "0x" + "ab" * 32,
        "payTo": REQ["payTo"],
        "asset": REQ["asset"],
        "minAmount": "1.5",
    }
    r = await client.post("/v1/payments/verify-tx", json=good)
    assert r.status == 400
    assert (await r.json())["code"] == "invalid_amount"
    r = await client.post("/v1/payments/verify-tx", json={**good, "minAmount": "10", "network": "nope"})
    assert r.status == 400
    assert (await r.json())["code"] == "invalid_network"
    r = await client.post("/v1/payments/verify-tx", json={**good, "minAmount": "10"})
    assert r.status == 400
    assert (await r.json())["code"] == "invalid_network"  # base is a known network but not configured here


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"paymentPayload": {}, "paymentRequirements": REQ}, "invalid_x402_version", "paymentPayload.x402Version"),
        ({"x402Version": 2, "paymentRequirements": REQ}, "invalid_payload", "paymentPayload"),
        ({"x402Version": 2, "paymentPayload": PAYLOAD}, "invalid_payment_requirements", "paymentRequirements"),
        (
            {"paymentPayload": {"x402Version": 2, "payload": {}}, "paymentRequirements": REQ},
            "invalid_payload",
            "paymentPayload.accepted",
        ),
        (
            {"paymentPayload": {**PAYLOAD, "accepted": {**REQ, "payTo": None}}, "paymentRequirements": REQ},
            "invalid_payload",
            "paymentPayload.accepted.payTo",
        ),
        (
            {"paymentPayload": PAYLOAD, "paymentRequirements": {k: v for k, v in REQ.items() if k != "scheme"}},
            "invalid_payment_requirements",
            "paymentRequirements.scheme",
        ),
    ],
)
async def test_missing_fields_are_named_by_path(
    settings: Settings, aiohttp_client: Any, body: dict[str, Any], code: str, field: str
) -> None:
    client = await aiohttp_client(create_app(settings))
    for path in ("/verify", "/settle"):
        r = await client.post(path, json=body)
        problem = await r.json()
        assert r.status == 400, problem
        assert (problem["code"], problem["field"]) == (code, field)
        assert field in problem["detail"]


@pytest.mark.parametrize("path", ["/verify", "/settle", "/v1/payments/verify-tx"])
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 65 + b"]" * 65, "json_too_deep"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, "json_too_deep"),
        (b'{"paymentPayload":' + b"[" * 1000 + b"]" * 1000 + b"}", "json_too_deep"),
        (b'{"paymentPayload":{"x402Version":2,"extensions":{"x":"\\u0000"}}}', "nul_character"),
    ],
)
async def test_deep_or_nul_bodies_are_400(
    settings: Settings, aiohttp_client: Any, path: str, body: bytes, code: str
) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    problem = await r.json()
    assert (r.status, problem["code"]) == (400, code), problem
    # 64 levels is still JSON the decoders see (and answer about its shape)
    r = await client.post(path, data=b"[" * 64 + b"]" * 64, headers={"Content-Type": "application/json"})
    assert (await r.json())["code"] != "json_too_deep"
