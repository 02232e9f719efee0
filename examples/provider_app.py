"""A paid aiohttp API: ``GET /weather`` costs PRICE atomic units of ASSET, paid to PAY_TO through x402.

env: PAY_TO, ASSET (token address), NETWORK (CAIP-2, default eip155:31337), TOKEN_NAME / TOKEN_VERSION (its EIP-712
domain, default "USD Coin" / "2"), PRICE (default 10000), PORT (default 8080), and FACILITATOR_URL for a remote
facilitator; without it the facilitator runs in process, configured like ``x402 serve`` (DATABASE_URL,
X402_NETWORKS, X402_EVM_SIGNER_KEY).
"""

import os

from aiohttp import web

from x402.facilitator.remote import RemoteFacilitator
from x402.paywall import AppFacilitator, Offer, Paywall, paid

env = os.environ
OFFER = Offer(
    amount=int(env.get("PRICE", "10000")),
    asset=env["ASSET"],
    network=env.get("NETWORK", "eip155:31337"),
    pay_to=env["PAY_TO"],
    extra={"name": env.get("TOKEN_NAME", "USD Coin"), "version": env.get("TOKEN_VERSION", "2")},
)


@paid(OFFER, description="Today's weather", mime_type="application/json")
async def weather(request: web.Request) -> web.Response:
    return web.json_response({"city": "Lisbon", "sky": "sunny"})


def build() -> web.Application:
    facilitator: RemoteFacilitator | AppFacilitator
    if env.get("FACILITATOR_URL"):
        app, facilitator = web.Application(), RemoteFacilitator(env["FACILITATOR_URL"])
    else:
        from x402.app import create_app
        from x402.settings import load_settings

        app = create_app(load_settings())
        facilitator = AppFacilitator(app)
    app.router.add_get("/weather", weather)
    Paywall(facilitator).setup(app)
    return app


if __name__ == "__main__":
    web.run_app(build(), host="127.0.0.1", port=int(env.get("PORT", "8080")))
