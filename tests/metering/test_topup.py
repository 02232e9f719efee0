"""Top-ups over x402 on the session anvil: a 402 with the pack's price, credits granted once per payment."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from chains.evm.devchain import DevChain
from chains.evm.payer import EvmSigner
from tests.harness import permit2 as p2
from tests.harness.evm import address_of, chain_settings, fund_eth, funded_payer, mint, new_key, token_balance
from tests.paywall.conftest import payer_client
from tests.platform.conftest import ADMIN, bearer, new_tenant
from tests.platform.conftest import new_key as new_api_key
from tests.wallets.conftest import MASTER_KEY
from x402.errors import ConfigError
from x402.service.app import create_app
from x402.service.metering.topup import MAX_EXPIRES_IN, pack_expiry, pack_offers
from x402.wire.codec import PAYMENT_REQUIRED, PAYMENT_SIGNATURE, decode_payment_required, encode_header
from x402.wire.models import PaymentPayload

PRICE = 25_000
CREDITS = 500


async def _service(
    devchain: DevChain,
    database_url: str,
    redis_url: str,
    aiohttp_client: Any,
    *,
    permit2: bool = False,
    expires_in: int | None = None,
) -> tuple[Any, str]:
    key = new_key()
    await fund_eth(devchain, address_of(key))
    pay_to = address_of(new_key())
    offer: dict[str, Any] = {
        "amount": PRICE,
        "network": devchain.network,
        "asset": devchain.token_address,
        "payTo": pay_to,
        "extra": {"name": devchain.token_name, "version": devchain.token_version},
    }
    pack: dict[str, Any] = {"credits": CREDITS, **offer}
    if permit2:  # the same pack by EIP-3009 or by Permit2
        by_permit2 = {**offer, "extra": {**offer["extra"], "assetTransferMethod": "permit2"}}
        pack = {"credits": CREDITS, "offers": [offer, by_permit2]}
    if expires_in is not None:
        pack["expiresIn"] = expires_in
    settings = chain_settings(
        devchain,
        database_url,
        key,
        require_api_keys=True,
        admin_token=ADMIN,
        redis_url=redis_url,
        credit_pack=pack,
        master_key=MASTER_KEY,  # wallets, for an agent paying its own top-up
        allow_private_outbound=True,  # the wallet pays this test's loopback server
    )
    return await aiohttp_client(create_app(settings)), pay_to


async def _purchases(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(DISTINCT txn) FROM credit_entries WHERE kind = 'purchase'"))
    finally:
        await conn.close()


@pytest.mark.slow
async def test_topup_is_a_402_and_a_payment_grants_the_pack_once(
    devchain: DevChain, database_url: str, redis_url: str, aiohttp_client: Any
) -> None:
    client, pay_to = await _service(devchain, database_url, redis_url, aiohttp_client)
    tenant = await new_tenant(client, "topups")
    h = bearer((await new_api_key(client, tenant, ["admin"]))["key"])
    url = f"/v1/credits/cus_1/topup?tenant={tenant}"
    # checked before any price is asked: an unknown tenant or a keyless call without one
    assert (await client.post("/v1/credits/cus_1/topup")).status == 401
    assert (await client.post("/v1/credits/cus_1/topup?tenant=00000000-0000-0000-0000-000000000000")).status == 404
    r = await client.post(url)
    assert r.status == 402
    required = decode_payment_required(r.headers[PAYMENT_REQUIRED])
    offer = required.accepts[0]
    assert (offer.amount, offer.pay_to) == (str(PRICE), pay_to)

    # an agent's client pays the 402 and gets the credits
    payer = await funded_payer(devchain)
    async with aiohttp.ClientSession() as http:
        paid = await payer_client(http, devchain, payer).post(str(client.make_url(url)))
    assert paid.status == 201, paid.text()
    assert paid.json()["credits"] == CREDITS
    assert await token_balance(devchain, pay_to) == PRICE
    bal = await (await client.get("/v1/credits/cus_1", headers=h)).json()
    assert bal["balance"] == CREDITS

    # one signed payment sent three times at once and once more afterwards: one settlement, one grant
    scheme_payload = await EvmSigner(payer).create_payload(offer, 2)
    header = encode_header(PaymentPayload(accepted=offer, payload=scheme_payload))
    tries = await asyncio.gather(*(client.post(url, headers={PAYMENT_SIGNATURE: header}) for _ in range(3)))
    again = await client.post(url, headers={PAYMENT_SIGNATURE: header})
    statuses = sorted([r.status for r in tries] + [again.status])
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 402}, statuses
    assert await token_balance(devchain, pay_to) == 2 * PRICE
    bal = await (await client.get("/v1/credits/cus_1", headers=h)).json()
    assert bal["balance"] == 2 * CREDITS
    assert await _purchases(database_url) == 2


@pytest.mark.slow
async def test_an_agent_wallet_tops_itself_up_within_its_policy(
    devchain: DevChain, database_url: str, redis_url: str, aiohttp_client: Any
) -> None:
    client, pay_to = await _service(devchain, database_url, redis_url, aiohttp_client)
    tenant = await new_tenant(client, "agent-topups")
    h = bearer((await new_api_key(client, tenant, ["wallets", "admin"]))["key"])
    url = str(client.make_url(f"/v1/credits/agent-7/topup?tenant={tenant}"))

    async def wallet(cap: int) -> str:
        body = {"name": f"agent-{cap}", "chains": ["evm"], "policy": {"perPaymentCap": str(cap)}}
        r = await client.post("/v1/wallets", json=body, headers=h)
        assert r.status == 201, await r.text()
        w = await r.json()
        await mint(devchain, w["addresses"]["evm"], 10 * PRICE)
        return str(w["id"])

    # over its per-payment cap: refused by the wallet's policy, nothing paid, no credits
    small = await wallet(PRICE - 1)
    r = await client.post(f"/v1/wallets/{small}/pay", json={"url": url, "method": "POST"}, headers=h)
    assert r.status >= 400, await r.text()
    assert (await client.get("/v1/credits/agent-7", headers=h)).status == 404
    # within it: the wallet pays the 402 and the credits land
    big = await wallet(PRICE)
    r = await client.post(f"/v1/wallets/{big}/pay", json={"url": url, "method": "POST"}, headers=h)
    assert r.status == 200, await r.text()
    assert await token_balance(devchain, pay_to) == PRICE
    bal = await (await client.get("/v1/credits/agent-7", headers=h)).json()
    assert bal["balance"] == CREDITS


@pytest.mark.slow
async def test_a_pack_sold_by_several_offers_lists_them_all_and_any_one_grants_once(
    devchain: DevChain, database_url: str, redis_url: str, aiohttp_client: Any
) -> None:
    client, pay_to = await _service(devchain, database_url, redis_url, aiohttp_client, permit2=True, expires_in=86400)
    tenant = await new_tenant(client, "multi-offer-topups")
    h = bearer((await new_api_key(client, tenant, ["admin"]))["key"])
    url = f"/v1/credits/cus_2/topup?tenant={tenant}"
    r = await client.post(url)
    assert r.status == 402
    accepts = decode_payment_required(r.headers[PAYMENT_REQUIRED]).accepts
    assert [(o.scheme, o.amount, o.extra.get("assetTransferMethod")) for o in accepts] == [
        ("exact", str(PRICE), None),
        ("exact", str(PRICE), "permit2"),
    ]

    # the second offer (Permit2) paid, then the same payment sent again: one settlement, one grant
    payer = await p2.permit2_payer(devchain)
    scheme_payload = await EvmSigner(payer).create_payload(accepts[1], 2)
    assert "permit2Authorization" in scheme_payload
    header = encode_header(PaymentPayload(accepted=accepts[1], payload=scheme_payload))
    paid = await client.post(url, headers={PAYMENT_SIGNATURE: header})
    assert paid.status == 201, await paid.text()
    purchase = await paid.json()
    assert purchase["credits"] == CREDITS
    assert purchase["expiresAt"] is not None  # the pack's expiresIn: bought credits that expire
    again = await asyncio.gather(*(client.post(url, headers={PAYMENT_SIGNATURE: header}) for _ in range(2)))
    assert {r.status for r in again} <= {200, 402}, [r.status for r in again]  # replayed or refused, never granted
    assert await token_balance(devchain, pay_to) == PRICE
    bal = await (await client.get("/v1/credits/cus_2", headers=h)).json()
    assert bal["balance"] == CREDITS
    assert bal["nextExpiry"] == {"credits": CREDITS, "expiresAt": purchase["expiresAt"]}
    assert await _purchases(database_url) == 1


def test_a_malformed_pack_is_a_config_error_naming_the_offer() -> None:
    usdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    offer = {
        "amount": 1,
        "network": "eip155:8453",
        "asset": usdc,
        "payTo": "0x1",
        "extra": {"name": "USDC", "version": "2"},
    }
    credits, offers = pack_offers({"credits": 5, "offers": [offer, {**offer, "network": "eip155:84532"}]})
    assert (credits, [o.network for o in offers]) == (5, ["eip155:8453", "eip155:84532"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"offers": [offer]}, "X402_CREDIT_PACK needs credits"),
        ({"credits": 0, **offer}, "credits must be positive"),
        ({"credits": 5, "offers": []}, "offers must be a non-empty JSON array"),
        ({"credits": 5, "offers": [offer], "amount": 1}, "put amount, network, asset and payTo in each offer"),
        ({"credits": 5, "offers": [offer, {"amount": 1}]}, "offers[1] needs amount, network, asset, payTo (missing"),
        ({"credits": 5, "offers": [offer, {**offer, "network": "nowhere"}]}, "offers[1]: Offer.network"),
        ({"credits": 5, "offers": [offer, {**offer, "amount": 0}]}, "offers[1]: Offer.amount"),
        ({"credits": 5, "offers": [offer, offer]}, "offers[1] repeats the scheme, network and asset"),
        ({"credits": 5, "offers": ["x"]}, "offers[0] must be a JSON object"),
    ]
    for pack, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            pack_offers(pack)
    assert pack_expiry({"credits": 5, **offer}) is None
    assert pack_expiry({"credits": 5, "expiresIn": 86400, **offer}) == timedelta(days=1)
    for bad in (0, -1, "86400", 1.5, True, MAX_EXPIRES_IN + 1):
        with pytest.raises(ConfigError, match="expiresIn must be a number of seconds"):
            pack_expiry({"credits": 5, "expiresIn": bad, **offer})
