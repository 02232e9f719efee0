"""The service with one credit-charged route whose handler blocks until the process dies: what
tests/metering/test_credit_holds.py kills with SIGKILL between the burn and the answer.

Run as ``python -m tests.metering.held_service`` with the service's environment (``DATABASE_URL``, ``X402_PORT``,
``X402_REQUIRE_API_KEYS=0``); ``X-Customer-Key: ck_<customer>`` names the customer. The handler prints
``handler running <Idempotency-Key>`` once it runs, i.e. after the burn.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from x402.paywall import CreditConfig, CreditPrice, PaidRoute, Paywall, header_customer
from x402.service.app import create_app
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.metering.paywall import AppCredits
from x402.service.settings import load_settings

PRICE = 5


async def lookup(key: str) -> str | None:
    return key.removeprefix("ck_") if key.startswith("ck_") else None


async def blocks(request: web.Request) -> web.Response:
    print("handler running", request.headers.get("Idempotency-Key"), flush=True)
    await asyncio.Event().wait()
    return web.json_response({"never": True})


async def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    app.router.add_get("/slow", blocks)
    Paywall(
        AppFacilitator(app),
        routes={("GET", "/slow"): PaidRoute((), credits=CreditPrice(credits=PRICE, mode="credits"))},
        credits=CreditConfig(AppCredits(app), header_customer(lookup)),
        register=False,
    ).setup(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    print("listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
