"""Wire model tests: encoding rules, facilitator request decoding, normalisation, amounts, discovery."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from x402.errors import BadRequest
from x402.wire import (
    DiscoveryItem,
    DiscoveryPage,
    Pagination,
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequired,
    PaymentRequiredV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
    SettleRequest,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyRequest,
    VerifyResponse,
    decode_facilitator_request,
    decode_json,
    encode_json,
    normalize,
    parse_amount,
    reasons,
    requirements_to_v2,
)

REQ_V2: dict[str, Any] = {
    "scheme": "exact",
    "network": "eip155:84532",
    "amount": "10000",
    "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "maxTimeoutSeconds": 60,
    "extra": {"name": "USDC", "version": "2"},
}
REQ_V1: dict[str, Any] = {
    "scheme": "exact",
    "network": "base-sepolia",
    "maxAmountRequired": "10000",
    "resource": "https://api.example.com/premium-data",
    "description": "",
    "mimeType": "application/json",
    "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "maxTimeoutSeconds": 60,
    "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    "extra": {"name": "USDC", "version": "2"},
}
EVM_PAYLOAD: dict[str, Any] = {"signature": "0x00", "authorization": {"from": "0x1", "value": "10000"}}
PAY_V2: dict[str, Any] = {"x402Version": 2, "accepted": REQ_V2, "payload": EVM_PAYLOAD}
PAY_V1: dict[str, Any] = {"x402Version": 1, "scheme": "exact", "network": "base-sepolia", "payload": EVM_PAYLOAD}


def enc(obj: Any) -> Any:
    return json.loads(encode_json(obj))


def no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return value is not None


# ------------------------------------------------------------------------------------ encoding


def test_unset_optionals_are_omitted_and_keys_are_camel_case() -> None:
    assert enc(VerifyResponse(is_valid=True)) == {"isValid": True}
    assert enc(VerifyResponse(is_valid=False, invalid_reason="insufficient_funds", payer="0x1")) == {
        "isValid": False,
        "invalidReason": "insufficient_funds",
        "payer": "0x1",
    }
    icon = "https://cdn.example.com/i.png"
    assert enc(ResourceInfo(url="u", mime_type="m", icon_url=icon, service_name="s")) == {
        "url": "u",
        "mimeType": "m",
        "serviceName": "s",
        "iconUrl": icon,
    }


def test_settle_response_always_has_transaction_and_network() -> None:
    assert enc(SettleResponse(success=False, network="eip155:84532")) == {
        "success": False,
        "transaction": "",
        "network": "eip155:84532",
    }
    ok = SettleResponse(success=True, transaction="0xab", network="eip155:1", payer="0x1", amount="5")
    assert enc(ok) == {"success": True, "payer": "0x1", "transaction": "0xab", "network": "eip155:1", "amount": "5"}


def test_version_fields_always_encoded() -> None:
    assert enc(PaymentPayloadV1(scheme="exact", network="base", payload={}))["x402Version"] == 1
    assert enc(PaymentRequiredV1(error="", accepts=[]))["x402Version"] == 1
    assert enc(PaymentRequired(accepts=[])) == {"x402Version": 2, "accepts": []}
    p = PaymentPayload(accepted=decode_json(json.dumps(REQ_V2), PaymentRequirements), payload={})
    assert list(enc(p)) == ["x402Version", "accepted", "payload"]


def test_supported_response_always_has_extensions_and_signers() -> None:
    s = SupportedResponse(kinds=[SupportedKind(x402_version=2, scheme="exact", network="eip155:8453")])
    assert enc(s) == {
        "kinds": [{"x402Version": 2, "scheme": "exact", "network": "eip155:8453"}],
        "extensions": [],
        "signers": {},
    }
    s2 = decode_json(
        b'{"kinds":[{"x402Version":1,"scheme":"exact","network":"base","extra":{"a":1}}]}', SupportedResponse
    )
    assert s2.extensions == []
    assert s2.signers == {}


def test_v1_requirements_round_trip_and_never_null() -> None:
    r = decode_json(json.dumps(REQ_V1), PaymentRequirementsV1)
    assert enc(r) == REQ_V1
    with pytest.raises(BadRequest) as info:
        decode_json(json.dumps(dict(REQ_V1, outputSchema=None)), PaymentRequirementsV1)
    assert info.value.code == "invalid_payload"
    body = PaymentRequiredV1(error="X-PAYMENT header is required", accepts=[r])
    assert no_nulls(enc(body))


def test_discovery_page_encoding() -> None:
    item = DiscoveryItem(
        resource="https://api.example.com/x",
        type="http",
        x402_version=2,
        accepts=[REQ_V2],
        last_updated="2026-01-01T00:00:00Z",
        tags=["data"],
    )
    page = DiscoveryPage(items=[item], pagination=Pagination(limit=20, offset=0, total=1))
    out = enc(page)
    assert out == {
        "x402Version": 2,
        "items": [
            {
                "resource": "https://api.example.com/x",
                "type": "http",
                "x402Version": 2,
                "accepts": [REQ_V2],
                "lastUpdated": "2026-01-01T00:00:00Z",
                "tags": ["data"],
            }
        ],
        "pagination": {"limit": 20, "offset": 0, "total": 1},
    }
    assert decode_json(encode_json(page), DiscoveryPage) == page


def test_decode_json_errors() -> None:
    with pytest.raises(BadRequest) as info:
        decode_json(b"{", VerifyResponse)
    assert info.value.code == "invalid_json"
    with pytest.raises(BadRequest) as info:
        decode_json(b'{"isValid":"yes"}', VerifyResponse)
    assert info.value.code == "invalid_payload"
    assert "$.isValid" in info.value.detail


# -------------------------------------------------------------------------- facilitator request


def test_decode_facilitator_request_v2_and_v1() -> None:
    fr = decode_facilitator_request(
        json.dumps({"x402Version": 2, "paymentPayload": PAY_V2, "paymentRequirements": REQ_V2})
    )
    assert fr.x402_version == 2
    assert isinstance(fr.payload, PaymentPayload)
    assert isinstance(fr.requirements, PaymentRequirements)
    assert enc(fr.to_body()) == {"x402Version": 2, "paymentPayload": PAY_V2, "paymentRequirements": REQ_V2}

    fr1 = decode_facilitator_request(
        json.dumps({"x402Version": 1, "paymentPayload": PAY_V1, "paymentRequirements": REQ_V1})
    )
    assert fr1.x402_version == 1
    assert isinstance(fr1.payload, PaymentPayloadV1)
    assert isinstance(fr1.requirements, PaymentRequirementsV1)
    body = SettleRequest(x402_version=1, payment_payload=fr1.payload, payment_requirements=fr1.requirements)
    assert enc(body) == {"x402Version": 1, "paymentPayload": PAY_V1, "paymentRequirements": REQ_V1}
    assert isinstance(body, VerifyRequest)


def test_facilitator_request_without_top_level_version_uses_payload_version() -> None:
    fr = decode_facilitator_request(json.dumps({"paymentPayload": PAY_V1, "paymentRequirements": REQ_V1}).encode())
    assert fr.x402_version == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b"\xff", "invalid_json"),
        (b"[]", "invalid_payload"),
        (b"null", "invalid_payload"),
        (json.dumps({"x402Version": 2, "paymentRequirements": REQ_V2}), "invalid_payload"),
        (json.dumps({"x402Version": 2, "paymentPayload": PAY_V2}), "invalid_payment_requirements"),
        (json.dumps({"x402Version": 2, "paymentPayload": [], "paymentRequirements": REQ_V2}), "invalid_payload"),
        (
            json.dumps({"x402Version": 2, "paymentPayload": dict(PAY_V2, payload=None), "paymentRequirements": REQ_V2}),
            "invalid_payload",
        ),
        (
            json.dumps({"x402Version": 2, "paymentPayload": PAY_V2, "paymentRequirements": None}),
            "invalid_payment_requirements",
        ),
        (
            json.dumps({"x402Version": 2, "paymentPayload": PAY_V2, "paymentRequirements": REQ_V1}),
            "invalid_payment_requirements",
        ),
        (
            json.dumps({"x402Version": 1, "paymentPayload": PAY_V1, "paymentRequirements": REQ_V2}),
            "invalid_payment_requirements",
        ),
        (
            json.dumps({"x402Version": 2, "paymentPayload": PAY_V1, "paymentRequirements": REQ_V1}),
            "invalid_x402_version",
        ),
        (
            json.dumps(
                {"x402Version": 3, "paymentPayload": dict(PAY_V2, x402Version=3), "paymentRequirements": REQ_V2}
            ),
            "invalid_x402_version",
        ),
        (
            json.dumps({"x402Version": "2", "paymentPayload": PAY_V2, "paymentRequirements": REQ_V2}),
            "invalid_x402_version",
        ),
        (json.dumps({"paymentPayload": {"scheme": "exact"}, "paymentRequirements": REQ_V2}), "invalid_x402_version"),
    ],
)
def test_decode_facilitator_request_errors(body: bytes | str, code: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_facilitator_request(body)
    assert info.value.code == code


# ------------------------------------------------------------------------------------- normalise


def test_requirements_to_v2() -> None:
    v1 = decode_json(json.dumps(REQ_V1), PaymentRequirementsV1)
    assert enc(requirements_to_v2(v1)) == REQ_V2
    bad = msgspec.structs.replace(v1, network="no-such-net")
    with pytest.raises(BadRequest) as info:
        requirements_to_v2(bad)
    assert info.value.code == "invalid_network"


def test_normalize_v1_and_v2() -> None:
    fr = decode_facilitator_request(json.dumps({"paymentPayload": PAY_V1, "paymentRequirements": REQ_V1}))
    payload, reqs = normalize(fr.payload, fr.requirements)
    assert enc(reqs) == REQ_V2
    assert payload.accepted == reqs
    assert payload.payload == EVM_PAYLOAD
    assert not isinstance(payload.resource, msgspec.UnsetType)
    assert payload.resource.url == REQ_V1["resource"]

    other = decode_json(json.dumps(dict(PAY_V1, network="base")), PaymentPayloadV1)
    payload2, reqs2 = normalize(other, fr.requirements)
    assert payload2.accepted.network == "eip155:8453" != reqs2.network

    fr2 = decode_facilitator_request(json.dumps({"paymentPayload": PAY_V2, "paymentRequirements": REQ_V2}))
    assert normalize(fr2.payload, fr2.requirements) == (fr2.payload, fr2.requirements)
    with pytest.raises(BadRequest) as info:
        normalize(fr2.payload, fr.requirements)
    assert info.value.code == "invalid_x402_version"


# --------------------------------------------------------------------------------------- amounts


@pytest.mark.parametrize("value", ["0", "1", "10000", str(2**256 - 1)])
def test_parse_amount_ok(value: str) -> None:
    assert parse_amount(value) == int(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-1",
        "+1",
        "1.0",
        "1e6",
        " 1",
        "1 ",
        "0x10",
        "1_000",
        "١٢",
        "²",
        str(2**256),
        "9" * 100,
        "007",
        "010000",
        "00",
    ],
)
def test_parse_amount_rejects(value: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_amount(value)
    assert info.value.code == "invalid_amount"


def test_parse_amount_rejects_non_strings() -> None:
    with pytest.raises(BadRequest):
        parse_amount(10)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- reasons


def test_reason_codes_have_descriptions() -> None:
    codes = {v for k, v in vars(reasons).items() if k.isupper() and isinstance(v, str) and k != "DESCRIPTIONS"}
    assert codes == set(reasons.DESCRIPTIONS)
    assert {"settlement_pending", "duplicate_settlement", "invalid_exact_evm_signature", "insufficient_funds"} <= codes
    assert all(c == c.lower() and " " not in c for c in codes)
    assert all(d and "\n" not in d for d in reasons.DESCRIPTIONS.values())
