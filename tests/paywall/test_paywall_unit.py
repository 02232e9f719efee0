"""Paywall decisions with a scripted facilitator (no chain): retries, dependency failures, decorator, CORS."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chains.evm.payer import EvmSigner
from x402.client import PaymentPolicy, X402Client
from x402.errors import ConfigError, DependencyError, FacilitatorUnavailable, PaymentRefused
from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.paywall import Offer, Paywall, paid
from x402.wire.codec import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    decode_payment_required,
    decode_payment_response,
    encode_header,
)
from x402.wire.models import PaymentPayload, SettleResponse, SupportedKind, SupportedResponse, VerifyResponse

NETWORK = "eip155:31337"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PAY_TO = "0x000000000000000000000000000000000000bEEF"


def _offer(amount: int = 1000, **kw: Any) -> Offer:
    return Offer(
        amount=amount, asset=TOKEN, network=NETWORK, pay_to=PAY_TO, extra={"name": "USD Coin", "version": "2"}, **kw
    )


class ScriptedFacilitator:
    """Answers verify/settle from queues; raises what it is given."""

    def __init__(self) -> None:
        self.verify_answers: list[VerifyResponse | Exception] = []
        self.settle_answers: list[SettleResponse | Exception] = []
        self.verified = 0
        self.settled = 0
        self.kinds = [SupportedKind(x402_version=2, scheme="exact", network=NETWORK)]

    async def verify(self, payload: AnyPayload, requirements: AnyRequirements) -> VerifyResponse:
        self.verified += 1
        answer = self.verify_answers.pop(0) if self.verify_answers else VerifyResponse(is_valid=True, payer="0xabc")
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        self.settled += 1
        answer = self.settle_answers.pop(0) if self.settle_answers else _ok()
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def supported(self) -> SupportedResponse:
        return SupportedResponse(kinds=self.kinds)


def _ok() -> SettleResponse:
    return SettleResponse(success=True, transaction="0x" + secrets.token_hex(32), network=NETWORK, payer="0xabc")


async def _app(aiohttp_client: Any, fac: ScriptedFacilitator, **kw: Any) -> Any:
    calls: dict[str, int] = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.json_response({"ok": True})

    @paid(_offer(), description="decorated")
    async def decorated(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.json_response({"decorated": True})

    app = web.Application()
    app.router.add_get("/paid", handler)
    app.router.add_get("/deco", decorated)
    paywall = Paywall(fac, routes={("GET", "/paid"): _offer()}, pending_retry_delay=0.01, **kw)
    paywall.setup(app)
    client = await aiohttp_client(app)
    return client, calls


def _pay_client(session: aiohttp.ClientSession, **policy: Any) -> X402Client:
    key = "0x" + secrets.token_hex(32)
    return X402Client(session, [EvmSigner(key)], PaymentPolicy(allowed_assets=[TOKEN], **policy))


async def test_settlement_pending_is_retried_once(aiohttp_client: Any) -> None:
    fac = ScriptedFacilitator()
    pending = SettleResponse(success=False, error_reason="settlement_pending", transaction="0x01", network=NETWORK)
    fac.settle_answers = [pending, _ok()]
    client, calls = await _app(aiohttp_client, fac)
    async with aiohttp.ClientSession() as s:
        resp = await _pay_client(s).get(str(client.make_url("/paid")))
    assert resp.status == 200
    assert fac.settled == 2
    assert resp.settlement is not None
    assert resp.settlement.success is True
    assert calls["n"] == 1
    assert "PAYMENT-RESPONSE" in resp.headers["Access-Control-Expose-Headers"]


async def test_decorated_handler_is_paid(aiohttp_client: Any) -> None:
    fac = ScriptedFacilitator()
    client, _ = await _app(aiohttp_client, fac)
    r = await client.get("/deco")
    assert r.status == 402
    required = decode_payment_required(r.headers[PAYMENT_REQUIRED])
    assert not isinstance(required.resource, type(None))
    async with aiohttp.ClientSession() as s:
        resp = await _pay_client(s).get(str(client.make_url("/deco")))
    assert resp.status == 200
    assert resp.json() == {"decorated": True}
    assert decode_payment_response(resp.headers[PAYMENT_RESPONSE]).success is True


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (FacilitatorUnavailable("down"), 503, "facilitator_unavailable"),
        (DependencyError("rpc down", dependency="rpc:x", code="chain_unavailable"), 503, "chain_unavailable"),
        (aiohttp.ClientConnectionError("refused"), 503, "facilitator_unavailable"),
        (RuntimeError("bug"), 500, "internal_error"),
    ],
)
async def test_facilitator_errors_are_problem_json(
    aiohttp_client: Any, error: Exception, status: int, code: str
) -> None:
    fac = ScriptedFacilitator()
    fac.verify_answers = [error]
    client, calls = await _app(aiohttp_client, fac)
    async with aiohttp.ClientSession() as s:
        resp = await _pay_client(s).get(str(client.make_url("/paid")))
    assert resp.status == status
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert resp.json()["code"] == code
    assert calls["n"] == 0


async def test_settle_dependency_error_is_503_and_releases_the_claim(aiohttp_client: Any) -> None:
    fac = ScriptedFacilitator()
    fac.settle_answers = [FacilitatorUnavailable("down mid-settle"), _ok()]
    client, calls = await _app(aiohttp_client, fac)
    offer = _offer().requirements()
    scheme_payload = await EvmSigner("0x" + secrets.token_hex(32)).create_payload(offer, 2)
    header = encode_header(PaymentPayload(accepted=offer, payload=scheme_payload))
    first = await client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert first.status == 503
    assert (await first.json())["code"] == "facilitator_unavailable"
    # nothing was delivered, so the same payment may be retried (a released claim expires within 1 ms)
    await asyncio.sleep(0.01)
    second = await client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert second.status == 200
    third = await client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert third.status == 402
    assert decode_payment_required(third.headers[PAYMENT_REQUIRED]).error == "duplicate_settlement"
    assert calls["n"] == 2


async def test_unsupported_offer_fails_closed_at_start(aiohttp_client: Any) -> None:
    fac = ScriptedFacilitator()
    fac.kinds = []
    with pytest.raises(ConfigError):
        await _app(aiohttp_client, fac)


def test_offer_fills_eip712_domain_from_default_assets() -> None:
    usdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    offer = Offer(amount=10_000, asset=usdc, network="base", pay_to=PAY_TO)
    assert offer.network == "eip155:8453"
    assert offer.extra == {"name": "USD Coin", "version": "2"}
    with pytest.raises(ConfigError):
        Offer(amount=1, asset=TOKEN, network=NETWORK, pay_to=PAY_TO)  # unknown token, no extra
    with pytest.raises(ConfigError):
        _offer(amount=0)


async def test_client_policy_refuses_and_prefers_cheapest(aiohttp_client: Any) -> None:
    fac = ScriptedFacilitator()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/two", handler)
    Paywall(fac, routes={("GET", "/two"): [_offer(5000), _offer(2000)]}).setup(app)
    client = await aiohttp_client(app)
    url = str(client.make_url("/two"))
    async with aiohttp.ClientSession() as s:
        resp = await _pay_client(s).get(url)
        assert resp.status == 200
        assert resp.paid is not None
        assert resp.paid.amount == "2000"
        with pytest.raises(PaymentRefused) as info:
            await _pay_client(s, max_amount=1000).get(url)
        assert info.value.code == "no_acceptable_offer"
        assert "above the cap" in info.value.detail
        with pytest.raises(PaymentRefused):
            # default policy: only default stablecoins
            await X402Client(s, [EvmSigner("0x" + "11" * 32)]).get(url)
        with pytest.raises(PaymentRefused):
            await _pay_client(s, allowed_networks=["eip155:8453"]).get(url)


async def test_replay_guard_on_redis(aiohttp_client: Any, redis_url: str) -> None:
    from x402.cache import RedisCache

    cache = RedisCache(redis_url)
    fac = ScriptedFacilitator()
    fac.settle_answers = [SettleResponse(success=False, error_reason="insufficient_funds", network=NETWORK), _ok()]
    client, calls = await _app(aiohttp_client, fac, cache=cache)
    offer = _offer().requirements()
    scheme_payload = await EvmSigner("0x" + secrets.token_hex(32)).create_payload(offer, 2)
    header = encode_header(PaymentPayload(accepted=offer, payload=scheme_payload))
    failed = await client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert failed.status == 402
    receipt = decode_payment_response(failed.headers[PAYMENT_RESPONSE])
    assert receipt.success is False
    assert receipt.error_reason == "insufficient_funds"
    await asyncio.sleep(0.01)  # the released claim expires
    ok = await client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert ok.status == 200
    again = await client.get("/paid", headers={PAYMENT_SIGNATURE: header})
    assert again.status == 402
    assert decode_payment_required(again.headers[PAYMENT_REQUIRED]).error == "duplicate_settlement"
    assert calls["n"] == 2
    await cache.close()
