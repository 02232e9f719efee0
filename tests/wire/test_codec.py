"""Header codec tests: golden examples from the HTTP transport specs, malformed input, fuzzing."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from x402.errors import BadRequest, InvalidPaymentHeader
from x402.wire import (
    MAX_HEADER_BYTES,
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    X_PAYMENT_RESPONSE,
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequired,
    PaymentRequirements,
    SettleResponse,
    decode_extension_responses,
    decode_payment_payload,
    decode_payment_required,
    decode_payment_response,
    decode_payment_signature,
    decode_x_payment,
    encode_header,
)

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "http_header_examples.json").read_text())["examples"]

DECODERS: dict[str, Any] = {
    X_PAYMENT: decode_x_payment,
    X_PAYMENT_RESPONSE: decode_payment_response,
    PAYMENT_REQUIRED: decode_payment_required,
    PAYMENT_SIGNATURE: decode_payment_signature,
    PAYMENT_RESPONSE: decode_payment_response,
}


def b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def as_json(header: str) -> Any:
    return json.loads(base64.b64decode(header))


V2_PAYLOAD: dict[str, Any] = next(f["decoded"] for f in FIXTURES if f["header"] == PAYMENT_SIGNATURE)
V1_PAYLOAD: dict[str, Any] = next(f["decoded"] for f in FIXTURES if f["header"] == X_PAYMENT)
V2_REQUIRED: dict[str, Any] = next(f["decoded"] for f in FIXTURES if f["header"] == PAYMENT_REQUIRED)


def test_fixture_file_has_all_seven_examples() -> None:
    assert sorted(f["header"] for f in FIXTURES) == sorted(
        [X_PAYMENT, X_PAYMENT_RESPONSE, X_PAYMENT_RESPONSE, PAYMENT_REQUIRED, PAYMENT_SIGNATURE]
        + [PAYMENT_RESPONSE] * 2
    )


@pytest.mark.parametrize("example", FIXTURES, ids=lambda f: f"{f['header']}@{f['line']}")
def test_golden_examples_decode_and_round_trip(example: dict[str, Any]) -> None:
    assert json.loads(base64.b64decode(example["base64"])) == example["decoded"]
    obj = DECODERS[example["header"]](example["base64"])
    assert as_json(encode_header(obj)) == example["decoded"]


def test_golden_payment_signature_fields() -> None:
    p = decode_payment_signature(b64(V2_PAYLOAD))
    assert p.x402_version == 2
    assert p.accepted.pay_to == "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
    assert p.accepted.max_timeout_seconds == 60
    assert p.accepted.extra == {"name": "USDC", "version": "2"}
    assert p.payload["authorization"]["value"] == "10000"
    assert not isinstance(p.resource, msgspec.UnsetType)
    assert p.resource.mime_type == "application/json"


def test_golden_x_payment_fields() -> None:
    p = decode_x_payment(b64(V1_PAYLOAD))
    assert (p.x402_version, p.scheme, p.network) == (1, "exact", "base-sepolia")


def test_payment_payload_dispatches_on_version() -> None:
    assert isinstance(decode_payment_payload(b64(V2_PAYLOAD)), PaymentPayload)
    assert isinstance(decode_payment_payload(b64(V1_PAYLOAD)), PaymentPayloadV1)


@pytest.mark.parametrize("extensions", [None, {}, {"bazaar": {"info": {}, "schema": {}}}])
def test_extensions_absent_or_empty_accepted(extensions: dict[str, Any] | None) -> None:
    req = dict(V2_REQUIRED)
    pay = dict(V2_PAYLOAD)
    if extensions is not None:
        req["extensions"] = extensions
        pay["extensions"] = extensions
    r = decode_payment_required(b64(req))
    p = decode_payment_signature(b64(pay))
    assert as_json(encode_header(r)) == req
    assert as_json(encode_header(p)) == pay
    if extensions is None:
        assert isinstance(r.extensions, msgspec.UnsetType)


def test_unknown_fields_are_tolerated() -> None:
    p = dict(V2_PAYLOAD, futureField={"x": 1})
    p["accepted"] = dict(p["accepted"], somethingNew=True)
    assert decode_payment_signature(b64(p)).accepted.amount == "10000"


def test_encode_header_is_standard_base64_of_compact_json() -> None:
    resp = SettleResponse(success=False, error_reason="insufficient_funds", network="eip155:84532")
    raw = base64.b64decode(encode_header(resp), validate=True)
    assert raw == b'{"success":false,"errorReason":"insufficient_funds","transaction":"","network":"eip155:84532"}'


# ----------------------------------------------------------------------------------- malformed


def code_of(fn: Any, value: Any, **kw: Any) -> str:
    with pytest.raises(InvalidPaymentHeader) as info:
        fn(value, **kw)
    return info.value.code


GOOD = b64(V2_PAYLOAD)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "invalid_base64"),
        ("abc", "invalid_base64"),  # length not a multiple of 4
        ("ab=c", "invalid_base64"),
        ("a===", "invalid_base64"),
        ("!!!!", "invalid_base64"),
        (GOOD[:-4] + "-_AA", "invalid_base64"),
        (GOOD[:8] + " " + GOOD[8:-1], "invalid_base64"),
        (GOOD[:8] + "\n" + GOOD[8:-1], "invalid_base64"),
        (GOOD[:76] + "\r\n" + GOOD[76:-2], "invalid_base64"),
        (GOOD + "\n", "invalid_base64"),
        (" " + GOOD[:-1], "invalid_base64"),
        (GOOD[:-4] + "éééé", "invalid_base64"),
        (base64.b64encode(b"not json").decode(), "invalid_json"),
        (base64.b64encode(b"\xff\xfe{}").decode(), "invalid_json"),
        (base64.b64encode(b'{"x402Version":2,').decode(), "invalid_json"),
        (b64([1, 2]), "invalid_payload"),
        (b64(42), "invalid_payload"),
        (b64("str"), "invalid_payload"),
        (b64(None), "invalid_payload"),
        (b64({k: v for k, v in V2_PAYLOAD.items() if k != "accepted"}), "invalid_payload"),
        (b64({k: v for k, v in V2_PAYLOAD.items() if k != "payload"}), "invalid_payload"),
        (b64(dict(V2_PAYLOAD, resource=None)), "invalid_payload"),
        (b64(dict(V2_PAYLOAD, extensions=None)), "invalid_payload"),
        (b64(dict(V2_PAYLOAD, accepted=dict(V2_PAYLOAD["accepted"], maxTimeoutSeconds="60"))), "invalid_payload"),
        (b64(dict(V2_PAYLOAD, accepted=dict(V2_PAYLOAD["accepted"], extra=None))), "invalid_payload"),
        (b64(dict(V2_PAYLOAD, payload=[])), "invalid_payload"),
        (b64(dict(V2_PAYLOAD, x402Version=3)), "invalid_x402_version"),
        (b64(dict(V2_PAYLOAD, x402Version="2")), "invalid_x402_version"),
        (b64(dict(V2_PAYLOAD, x402Version=True)), "invalid_x402_version"),
        (b64(dict(V2_PAYLOAD, x402Version=None)), "invalid_x402_version"),
        (b64({k: v for k, v in V2_PAYLOAD.items() if k != "x402Version"}), "invalid_x402_version"),
        (b64(V1_PAYLOAD), "invalid_x402_version"),  # v1 payload in PAYMENT-SIGNATURE
    ],
)
def test_malformed_payment_signature(value: str, code: str) -> None:
    assert code_of(decode_payment_signature, value) == code


def test_null_in_optional_field_names_the_path() -> None:
    with pytest.raises(InvalidPaymentHeader) as info:
        decode_payment_signature(b64(dict(V2_PAYLOAD, resource=dict(V2_PAYLOAD["resource"], mimeType=None))))
    assert info.value.code == "invalid_payload"
    assert "$.resource.mimeType" in info.value.detail


def test_x_payment_rejects_v2() -> None:
    assert code_of(decode_x_payment, GOOD) == "invalid_x402_version"
    assert code_of(decode_x_payment, b64(dict(V1_PAYLOAD, network=None))) == "invalid_payload"
    assert code_of(decode_payment_payload, b64(dict(V1_PAYLOAD, x402Version=0))) == "invalid_x402_version"


def test_size_limit_checked_before_decoding() -> None:
    assert code_of(decode_payment_signature, "!" * (MAX_HEADER_BYTES + 1)) == "header_too_large"
    assert code_of(decode_payment_signature, GOOD, max_bytes=len(GOOD) - 1) == "header_too_large"
    assert decode_payment_signature(GOOD, max_bytes=len(GOOD)).accepted.amount == "10000"
    big = b64(dict(V2_PAYLOAD, extensions={"pad": "x" * MAX_HEADER_BYTES}))
    for fn in (decode_payment_signature, decode_x_payment, decode_payment_payload, decode_payment_required):
        assert code_of(fn, big) == "header_too_large"
    assert code_of(decode_payment_response, big) == "header_too_large"


def test_payment_required_and_response_errors() -> None:
    assert code_of(decode_payment_required, b64(dict(V2_REQUIRED, x402Version=1))) == "invalid_x402_version"
    assert code_of(decode_payment_required, b64(dict(V2_REQUIRED, accepts=None))) == "invalid_payload"
    assert code_of(decode_payment_required, b64(dict(V2_REQUIRED, error=None))) == "invalid_payload"
    assert code_of(decode_payment_response, b64({"success": True, "transaction": "0x1"})) == "invalid_payload"
    assert code_of(decode_payment_response, b64({"success": True, "network": "x", "payer": None})) == "invalid_payload"
    r = decode_payment_response(b64({"success": True, "network": "eip155:1"}))
    assert r.transaction == ""


def test_extension_responses_header() -> None:
    value = b64({"bazaar": {"status": "success"}})
    assert decode_extension_responses(value) == {"bazaar": {"status": "success"}}
    assert code_of(decode_extension_responses, b64([1])) == "invalid_payload"


def test_non_string_header_value() -> None:
    assert code_of(decode_payment_signature, b"abcd") == "invalid_base64"


ALL_DECODERS = [
    decode_payment_signature,
    decode_x_payment,
    decode_payment_payload,
    decode_payment_required,
    decode_payment_response,
    decode_extension_responses,
]


def _mutations(rng: random.Random) -> list[str]:
    raw = bytearray(base64.b64decode(GOOD))
    out = []
    for _ in range(3):
        i = rng.randrange(len(raw))
        raw[i] = rng.randrange(256)
    out.append(base64.b64encode(bytes(raw)).decode())
    good = list(GOOD)
    good[rng.randrange(len(good))] = rng.choice("AZaz09+/=-_ \n\t.é")
    out.append("".join(good))
    out.append(GOOD[: rng.randrange(len(GOOD))])
    out.append(base64.b64encode(rng.randbytes(rng.randrange(64))).decode())
    out.append("".join(rng.choice('ABCxyz019+/=- \n{}"') for _ in range(rng.randrange(40))))
    out.append(
        base64.b64encode(json.dumps(rng.choice([None, 1, 1.5, "s", [], {}, {"x402Version": 2}])).encode()).decode()
    )
    return out


def test_fuzz_only_bad_request_errors() -> None:
    rng = random.Random(402)
    seen: set[tuple[type[Exception], str]] = set()
    for _ in range(1500):
        for value in _mutations(rng):
            for fn in ALL_DECODERS:
                try:
                    fn(value)
                except BadRequest as exc:  # anything else propagates and fails the test
                    seen.add((type(exc), exc.code))
    assert {cls for cls, _ in seen} == {InvalidPaymentHeader}
    assert {code for _, code in seen} == {"invalid_base64", "invalid_json", "invalid_payload", "invalid_x402_version"}


def test_requirements_default_extra_round_trip() -> None:
    req = PaymentRequirements(
        scheme="exact", network="eip155:1", amount="1", asset="0xa", pay_to="0xb", max_timeout_seconds=60
    )
    pr = PaymentRequired(accepts=[req])
    assert as_json(encode_header(pr)) == {
        "x402Version": 2,
        "accepts": [
            {
                "scheme": "exact",
                "network": "eip155:1",
                "amount": "1",
                "asset": "0xa",
                "payTo": "0xb",
                "maxTimeoutSeconds": 60,
            }
        ],
    }
    assert decode_payment_required(encode_header(pr)) == pr
