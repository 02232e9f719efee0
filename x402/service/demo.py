"""``x402 serve --dev``: ``GET /demo/paid`` behind the paywall, paid in the dev token via the in-process facilitator.

The demo charges 0.01 token (10000 atomic units) to anvil dev account 9 (``0xa0Ee…9720``): the dev payers are
accounts 1-9, so pay from any of 1-8 (``examples/agent_pay.py`` uses account 1) to see the balance move.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web

from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.paywall.middleware import Handler, Paywall
from x402.paywall.offers import Offer, PaidRoute
from x402.service.appkeys import CACHE, DEMO_PAYWALL, DEV_INFO, PLATFORM, SETTINGS
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.outcome import detail_of
from x402.service.platform.recorder import record_of
from x402.wire.models import SettleResponse, SupportedResponse, VerifyResponse

DEMO_PATH: Final = "/demo/paid"
DEMO_AMOUNT: Final = 10_000
#: anvil dev account 9 (public test mnemonic)
DEMO_PAY_TO: Final = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"


def demo_route(state: Any) -> PaidRoute:
    """The demo's offer in the dev token."""
    offer = Offer(
        amount=DEMO_AMOUNT,
        asset=str(state["token_address"]),
        network=str(state["network"]),
        pay_to=DEMO_PAY_TO,
        extra={"name": str(state["token_name"]), "version": str(state["token_version"])},
        description="x402 serve --dev demo resource",
        mime_type="application/json",
    )
    return PaidRoute((offer,))


async def demo_handler(request: web.Request) -> web.Response:
    """The paid demo resource."""
    return web.json_response({"demo": "paid", "message": "thanks for paying 0.01 test token"})


class DevTenantFacilitator:
    """The in-process facilitator, with each outcome recorded as a payment of the dev tenant.

    The demo route is the dev tenant's own paid resource, so its payments show in that tenant's ``/v1/payments``,
    usage and dashboard, as a provider's payments do when its paywall calls ``/verify`` and ``/settle`` with its key.
    """

    def __init__(self, app: web.Application, tenant: uuid.UUID | None) -> None:
        self.inner = AppFacilitator(app)
        self.app = app
        self.tenant = tenant

    def _record(self, kind: str, payload: AnyPayload, requirements: AnyRequirements, result: Any, t0: float) -> None:
        detail = detail_of(payload, requirements, (time.perf_counter() - t0) * 1000)
        record = record_of(self.tenant, kind, requirements, result, detail)
        if record is not None:
            self.app[PLATFORM].writer.submit(record)

    async def verify(self, payload: AnyPayload, requirements: AnyRequirements) -> VerifyResponse:
        """Verify in process and record the outcome."""
        started = time.perf_counter()
        result = await self.inner.verify(payload, requirements)
        self._record("verify", payload, requirements, result, started)
        return result

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        """Settle in process and record the outcome."""
        started = time.perf_counter()
        result = await self.inner.settle(payload, requirements)
        self._record("settle", payload, requirements, result, started)
        return result

    async def supported(self) -> SupportedResponse:
        """What the in-process facilitator supports."""
        return await self.inner.supported()


async def dev_tenant(app: web.Application) -> uuid.UUID | None:
    """The dev tenant (the owner of the key ``x402 serve --dev`` printed), when there is one."""
    key = app[DEV_INFO].get("apiKey")
    if not key:
        return None
    return (await app[PLATFORM].auth.authenticate(str(key))).tenant_id


@web.middleware
async def _demo_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await request.app[DEMO_PAYWALL].middleware(request, handler)


def install(app: web.Application) -> None:
    """Mount the demo route and its paywall (dev mode only; after the facilitator installer)."""
    state = app[SETTINGS].dev_state
    if not state:
        return
    route = demo_route(state)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        paywall = Paywall(
            DevTenantFacilitator(app, await dev_tenant(app)),
            routes={("GET", DEMO_PATH): route},
            cache=app[CACHE],
            max_header_bytes=app[SETTINGS].max_header_bytes,
        )
        await paywall.start(app)
        app[DEMO_PAYWALL] = paywall
        yield

    app.router.add_get(DEMO_PATH, demo_handler)
    app.middlewares.append(_demo_middleware)
    app.cleanup_ctx.append(ctx)
    app[DEV_INFO]["demo"] = {
        "path": DEMO_PATH,
        "amount": str(DEMO_AMOUNT),
        "payTo": DEMO_PAY_TO,
        "network": state["network"],
    }
