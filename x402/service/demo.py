"""``x402 serve --dev``: ``GET /demo/paid`` behind the paywall, paid in the dev token via the in-process facilitator.

The demo charges 0.01 token (10000 atomic units) to anvil dev account 9 (``0xa0Ee…9720``): the dev payers are
accounts 1-9, so pay from any of 1-8 (``examples/agent_pay.py`` uses account 1) to see the balance move.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web

from chains.evm.siwx import RpcContractSignatures
from x402.paywall.middleware import Handler, Paywall
from x402.paywall.offers import Offer, PaidRoute
from x402.paywall.siwx import SiwxConfig
from x402.service.appkeys import CACHE, DB, DEMO_PAYWALL, DEV_INFO, SETTINGS
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.platform.devkey import DEV_TENANT
from x402.service.siwx_store import PgSiwxStore
from x402.service.storage.scope import system_scope

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
        settings = app[SETTINGS]
        contracts = RpcContractSignatures.from_urls(
            {n.network: n.rpc_urls for n in settings.networks if n.network.startswith("eip155:")}
        )
        # the demo's payments are the dev tenant's records (its dashboard and analytics show them)
        with system_scope("demo paywall: find the dev tenant that owns its payment records"):
            owner = await app[DB].fetchval("SELECT id FROM tenants WHERE name = $1 ORDER BY created_at", DEV_TENANT)
        paywall = Paywall(
            AppFacilitator(app, tenant_id=owner, method="GET"),
            routes={("GET", DEMO_PATH): route},
            cache=app[CACHE],
            max_header_bytes=settings.max_header_bytes,
            # a payer of /demo/paid signs in for a day instead of paying again (Sign-In-With-X)
            siwx=SiwxConfig(PgSiwxStore(app[DB]), contract_signatures=contracts),
        )
        await paywall.start(app)
        await paywall.announce(app)  # lists /demo/paid in discovery and the manifest when X402_PUBLIC_URL is set
        app[DEMO_PAYWALL] = paywall
        yield
        await contracts.close()

    app.router.add_get(DEMO_PATH, demo_handler)
    app.middlewares.append(_demo_middleware)
    app.cleanup_ctx.append(ctx)
    app[DEV_INFO]["demo"] = {
        "path": DEMO_PATH,
        "amount": str(DEMO_AMOUNT),
        "payTo": DEMO_PAY_TO,
        "network": state["network"],
    }
