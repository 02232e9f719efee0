"""The paywall's start-up subscribers: called with the app and the paywall once its paid routes are known."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.paywall import PAYWALL_STARTED, Offer, PaidRoute, Paywall, StartHook
from x402.wire.models import SettleResponse, SupportedResponse, VerifyResponse

OFFER = Offer(
    amount=1000,
    asset="0x" + "11" * 20,
    network="eip155:31337",
    pay_to="0x" + "22" * 20,
    extra={"name": "Token", "version": "1"},
)


class Unused:
    """A facilitator these tests never reach: no payment is made and ``/supported`` is not checked."""

    async def verify(self, payload: AnyPayload, requirements: AnyRequirements) -> VerifyResponse:
        raise AssertionError("not called")

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        raise AssertionError("not called")

    async def supported(self) -> SupportedResponse:
        raise AssertionError("not called")


async def _free(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _app(seen: list[tuple[web.Application, Paywall, list[Any]]], **paywall_kw: Any) -> tuple[web.Application, Paywall]:
    app = web.Application()
    app.router.add_get("/paid", _free)
    app.router.add_get("/free", _free)

    async def hook(started: web.Application, paywall: Paywall) -> None:
        seen.append((started, paywall, paywall.paid_routes))

    hooks: list[StartHook] = [hook]
    app[PAYWALL_STARTED] = hooks
    paywall = Paywall(Unused(), routes={("GET", "/paid"): OFFER}, check_supported=False, **paywall_kw)
    paywall.setup(app)
    return app, paywall


async def test_subscribers_get_the_paid_routes(aiohttp_client: Any) -> None:
    seen: list[tuple[web.Application, Paywall, list[Any]]] = []
    app, paywall = _app(seen)
    await aiohttp_client(app)
    assert len(seen) == 1
    started, got, routes = seen[0]
    assert started is app
    assert got is paywall
    assert routes == [(("GET", "/paid"), PaidRoute(offers=(OFFER,)))]


async def test_register_false_skips_the_subscribers(aiohttp_client: Any) -> None:
    seen: list[tuple[web.Application, Paywall, list[Any]]] = []
    app, _ = _app(seen, register=False)
    await aiohttp_client(app)
    assert seen == []
