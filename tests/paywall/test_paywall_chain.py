"""The paywall on the real anvil with the in-process facilitator, paid by our Python client."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import msgspec

from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness.evm import address_of, fund_eth, new_key, rpc, sign_payment, token_balance
from tests.paywall.conftest import AMOUNT, ProviderFactory, payer_client
from x402.paywall import NO_MATCH, REPLAYED
from x402.wire.codec import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    X_PAYMENT_RESPONSE,
    decode_payment_required,
    decode_payment_response,
    encode_header,
)
from x402.wire.models import PaymentPayload


def _error(headers: Any) -> str | None:
    required = decode_payment_required(headers[PAYMENT_REQUIRED])
    return required.error if isinstance(required.error, str) else None


async def test_unpaid_request_gets_v2_header_and_v1_body(make_provider: ProviderFactory, devchain: DevChain) -> None:
    p = await make_provider()
    r = await p.client.get("/paid")
    assert r.status == 402
    assert r.headers["Cache-Control"] == "no-store"
    assert "PAYMENT-RESPONSE" in r.headers["Access-Control-Expose-Headers"]
    assert "PAYMENT-REQUIRED" in r.headers["Access-Control-Expose-Headers"]
    required = decode_payment_required(r.headers[PAYMENT_REQUIRED])
    assert required.error == "Payment required"
    assert [msgspec.to_builtins(a) for a in required.accepts] == [
        {
            "scheme": "exact",
            "network": "eip155:31337",
            "amount": str(AMOUNT),
            "asset": devchain.token_address,
            "payTo": p.pay_to,
            "maxTimeoutSeconds": 300,
            "extra": {"name": devchain.token_name, "version": devchain.token_version},
        }
    ]
    assert not isinstance(required.resource, msgspec.UnsetType)
    assert required.resource.url == p.url("/paid")
    # eip155:31337 has no v1 name: the v1 body lists no offer unless the CAIP-2 extension is on
    assert await r.json() == {"x402Version": 1, "error": "Payment required", "accepts": []}
    assert p.calls["paid"] == 0

    free = await p.client.get("/free")
    assert free.status == 200
    assert PAYMENT_REQUIRED not in free.headers


async def test_v1_body_with_caip2_extension_and_browser_page(make_provider: ProviderFactory) -> None:
    p = await make_provider(v1_caip2_networks=True)
    r = await p.client.get("/paid")
    body = await r.json()
    assert body["x402Version"] == 1
    [entry] = body["accepts"]
    assert entry["network"] == "eip155:31337"
    assert entry["maxAmountRequired"] == str(AMOUNT)
    assert entry["resource"] == p.url("/paid")
    assert entry["description"] == "paid test resource"
    assert entry["mimeType"] == "application/json"

    browser = await p.client.get(
        "/paid", headers={"Accept": "text/html,application/xhtml+xml", "User-Agent": "Mozilla"}
    )
    assert browser.status == 402
    assert browser.content_type == "text/html"
    assert PAYMENT_REQUIRED in browser.headers
    page = await browser.text()
    assert "Payment required" in page
    assert p.pay_to in page


async def test_client_pays_v2(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    p = await make_provider()
    payer = address_of(payer_key)
    before = await token_balance(devchain, payer)
    resp = await payer_client(http, devchain, payer_key).get(p.url("/paid"))
    assert resp.status == 200, resp.text()
    assert resp.json() == {"ok": True}
    assert resp.x402_version == 2
    assert resp.paid is not None
    assert resp.paid.amount == str(AMOUNT)
    assert resp.settlement is not None
    assert resp.settlement.success is True
    assert resp.settlement.network == "eip155:31337"
    assert resp.settlement.transaction.startswith("0x")
    assert isinstance(resp.settlement.payer, str)
    assert resp.settlement.payer.lower() == payer.lower()
    assert X_PAYMENT_RESPONSE not in resp.headers  # v1 header only for v1 payments
    assert await token_balance(devchain, p.pay_to) == AMOUNT
    assert await token_balance(devchain, payer) == before - AMOUNT
    assert p.calls["paid"] == 1
    # the handler sees who paid and the risk assessment of the payment
    (seen,) = p.seen
    assert seen.payer is not None
    assert seen.payer.lower() == payer.lower()
    assert seen.requirements.amount == str(AMOUNT)
    assert seen.risk is not None
    assert seen.risk["recommendation"] == "accept"
    assert {f["code"] for f in seen.risk["flags"]} >= {"first_time_payer"}


async def test_client_pays_v1_with_caip2_network(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    p = await make_provider(versions=(1,), v1_caip2_networks=True)
    r = await p.client.get("/paid")
    assert r.status == 402
    assert PAYMENT_REQUIRED not in r.headers  # a v1-only paywall
    resp = await payer_client(http, devchain, payer_key).get(p.url("/paid"))
    assert resp.status == 200, resp.text()
    assert resp.x402_version == 1
    assert resp.settlement is not None
    assert resp.settlement.success is True
    assert resp.headers[X_PAYMENT_RESPONSE] == resp.headers[PAYMENT_RESPONSE]
    assert await token_balance(devchain, p.pay_to) == AMOUNT


async def test_x_payment_accepted_by_dual_paywall(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str
) -> None:
    p = await make_provider(v1_caip2_networks=True)
    signer = EvmSigner(payer_key)
    offer = p.paywall.challenges.get(p.paywall.routes[("GET", "/paid")], p.url("/paid")).requirements[0]
    scheme_payload = await signer.create_payload(offer, 1)
    assert int(scheme_payload["authorization"]["validAfter"]) > 0  # v1 back-dates validAfter
    header = base64.b64encode(
        json.dumps({"x402Version": 1, "scheme": "exact", "network": "eip155:31337", "payload": scheme_payload}).encode()
    ).decode()
    r = await p.client.get("/paid", headers={X_PAYMENT: header})
    assert r.status == 200, await r.text()
    assert decode_payment_response(r.headers[X_PAYMENT_RESPONSE]).success is True


async def test_handler_failure_charges_nothing(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    p = await make_provider()
    payer = address_of(payer_key)
    before = await token_balance(devchain, payer)
    client = payer_client(http, devchain, payer_key)
    resp = await client.get(p.url("/fails"))
    assert resp.status == 500
    assert resp.json() == {"error": "upstream broke"}
    assert resp.settlement is None
    resp = await client.get(p.url("/raises"))
    assert resp.status == 500
    assert resp.settlement is None
    assert p.calls["fails"] == 1
    assert p.calls["raises"] == 1
    assert await token_balance(devchain, payer) == before
    assert await token_balance(devchain, p.pay_to) == 0


async def _drain(chain: DevChain, key: str) -> None:
    """Move all of a payer's tokens away (impersonated), so an already verified payment can no longer settle."""
    payer = address_of(key)
    balance = await token_balance(chain, payer)
    await rpc(chain.rpc_url, "anvil_impersonateAccount", payer)
    await fund_eth(chain, payer)
    sink = address_of(new_key())
    data = "0xa9059cbb" + "00" * 12 + sink.lower().removeprefix("0x") + balance.to_bytes(32, "big").hex()
    tx = await rpc(chain.rpc_url, "eth_sendTransaction", {"from": payer, "to": chain.token_address, "data": data})
    for _ in range(100):
        if await rpc(chain.rpc_url, "eth_getTransactionReceipt", tx):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("drain not mined")


async def test_settle_failure_is_402_with_failure_receipt(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    p = await make_provider()
    p.hooks["hooked"] = lambda: _drain(devchain, payer_key)
    resp = await payer_client(http, devchain, payer_key).get(p.url("/hooked"))
    assert resp.status == 402, resp.text()
    assert p.calls["hooked"] == 1
    assert resp.settlement is not None
    assert resp.settlement.success is False
    assert resp.settlement.transaction == ""
    assert resp.settlement.network == "eip155:31337"
    assert isinstance(resp.settlement.error_reason, str)
    assert resp.headers["Cache-Control"] == "no-store"
    assert _error(resp.headers) == resp.settlement.error_reason
    assert await token_balance(devchain, p.pay_to) == 0


async def test_mismatched_accepted_is_refused(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str
) -> None:
    p = await make_provider()
    offer = p.paywall.challenges.get(p.paywall.routes[("GET", "/paid")], p.url("/paid")).requirements[0]
    cheaper = msgspec.structs.replace(offer, amount="1")
    payment = sign_payment(devchain, payer_key, cheaper)
    r = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: encode_header(payment.payload)})
    assert r.status == 402
    assert _error(r.headers) == NO_MATCH
    assert (await r.json())["error"] == NO_MATCH
    # extra keys the client adds are tolerated, a changed payTo is not
    wrong_to = msgspec.structs.replace(offer, pay_to=address_of(new_key()))
    payment = sign_payment(devchain, payer_key, wrong_to)
    r = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: encode_header(payment.payload)})
    assert _error(r.headers) == NO_MATCH
    assert p.calls["paid"] == 0


async def test_invalid_signature_is_402_with_reason(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str
) -> None:
    p = await make_provider()
    offer = p.paywall.challenges.get(p.paywall.routes[("GET", "/paid")], p.url("/paid")).requirements[0]
    payment = sign_payment(devchain, payer_key, offer, name="Wrong Name")
    r = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: encode_header(payment.payload)})
    assert r.status == 402
    assert _error(r.headers) == "invalid_exact_evm_signature"
    assert p.calls["paid"] == 0


async def _signed_header(p: Any, key: str) -> str:
    offer = p.paywall.challenges.get(p.paywall.routes[("GET", "/paid")], p.url("/paid")).requirements[0]
    scheme_payload = await EvmSigner(key).create_payload(offer, 2)
    return encode_header(PaymentPayload(accepted=offer, payload=scheme_payload))


async def test_replayed_header_is_refused(make_provider: ProviderFactory, devchain: DevChain, payer_key: str) -> None:
    p = await make_provider()
    header = await _signed_header(p, payer_key)
    first = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert first.status == 200, await first.text()
    second = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert second.status == 402
    assert _error(second.headers) in (REPLAYED, "invalid_exact_evm_nonce_already_used")
    assert p.calls["paid"] == 1
    assert await token_balance(devchain, p.pay_to) == AMOUNT


async def test_concurrent_uses_of_one_payment_run_the_handler_once(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str
) -> None:
    p = await make_provider()
    header = await _signed_header(p, payer_key)
    results = await asyncio.gather(*(p.client.get("/paid", headers={PAYMENT_SIGNATURE: header}) for _ in range(4)))
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 402, 402, 402], statuses
    for r in results:
        if r.status == 402:
            assert _error(r.headers) == REPLAYED
    assert p.calls["paid"] == 1
    assert await token_balance(devchain, p.pay_to) == AMOUNT


async def test_settle_before_handler(
    make_provider: ProviderFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    p = await make_provider(settle_before_handler=True)
    resp = await payer_client(http, devchain, payer_key).get(p.url("/paid"))
    assert resp.status == 200, resp.text()
    assert resp.headers["Cache-Control"] == "private"
    assert resp.settlement is not None
    assert resp.settlement.success is True
    assert await token_balance(devchain, p.pay_to) == AMOUNT


async def test_malformed_headers_are_402_with_codec_code(make_provider: ProviderFactory) -> None:
    # below aiohttp's own 8190-byte header line limit, so the codec's size check is what answers
    p = await make_provider(max_header_bytes=4096)
    cases = {
        "not base64!": "invalid_base64",
        "eyJ4NDAyVmVyc2lvbiI6Mn0": "invalid_base64",  # unpadded
        base64.b64encode(b"{nope").decode(): "invalid_json",
        base64.b64encode(b'{"x402Version":2}').decode(): "invalid_payload",
        base64.b64encode(b'{"x402Version":7}').decode(): "invalid_x402_version",
        "A" * 6000: "header_too_large",
    }
    for value, code in cases.items():
        r = await p.client.get("/paid", headers={PAYMENT_SIGNATURE: value})
        assert r.status == 402, (value[:20], await r.text())
        assert _error(r.headers) == code, value[:20]
        assert (await r.json())["error"] == code
    r = await p.client.get("/paid", headers={X_PAYMENT: base64.b64encode(b'{"x402Version":2}').decode()})
    assert r.status == 402
    assert _error(r.headers) == "invalid_x402_version"
    assert p.calls["paid"] == 0
