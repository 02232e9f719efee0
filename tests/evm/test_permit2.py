"""Permit2 on the real anvil chain through the HTTP facilitator: ``exact`` by Permit2 (any ERC-20, EIP-2612 gas
sponsoring) and ``upto`` (settle the actual amount up to the signed maximum), with the reason code of each
rejection. Permit2 and the x402 proxies are our builds placed at the canonical addresses by the dev chain."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from eth_account import Account

import x402.service.app  # noqa: F401 - imported before any test runs (prometheus reads /proc at import)
from chains.evm import permit2 as p2
from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness import permit2 as h
from x402.wire.models import PaymentRequirements

pytestmark = pytest.mark.slow


async def _facilitator(aiohttp_client: Any, chain: DevChain, database_url: str, *tokens: h.Token) -> tuple[Any, str]:
    return await evm.facilitator_client(aiohttp_client, chain, database_url, networks=(h.network(chain, *tokens),))


async def _post(client: Any, path: str, payment: evm.Payment, req: PaymentRequirements | None = None) -> dict[str, Any]:
    body = payment.body()
    if req is not None:  # upto settle: the server's requirements carry the actual amount
        import msgspec

        body["paymentRequirements"] = msgspec.to_builtins(req)
    r = await client.post(path, json=body)
    assert r.status == 200, await r.text()
    out: dict[str, Any] = await r.json()
    return out


def _with_amount(req: PaymentRequirements, amount: int) -> PaymentRequirements:
    import msgspec

    return msgspec.structs.replace(req, amount=str(amount))


def test_digest_matches_eth_account() -> None:
    """The hand-rolled Permit2 digest equals eth-account's generic EIP-712 hash, exact and upto witnesses."""
    key = evm.new_key()
    chain = DevChain(rpc_url="http://127.0.0.1:1")
    extras: tuple[tuple[str, dict[str, Any]], ...] = (
        ("exact", {}),
        ("upto", {"facilitatorAddress": evm.address_of(evm.new_key())}),
    )
    for scheme, extra in extras:
        req = h.requirements(chain, evm.address_of(evm.new_key()), 1234, scheme=scheme, **extra)
        payment = h.sign(chain, key, req)
        auth = p2.parse_permit2(payment.payload.payload)
        assert auth.recovers_to_payer(chain.chain_id)
        assert auth.upto is (scheme == "upto")
        assert not auth.recovers_to_payer(1)  # another chain's domain


async def test_upto_settles_actual_amounts(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client, signer = await _facilitator(aiohttp_client, devchain, database_url)
    sup = await (await client.get("/supported")).json()
    assert "eip2612GasSponsoring" in sup["extensions"]
    upto = [k for k in sup["kinds"] if k["scheme"] == "upto"]
    assert upto == [
        {"x402Version": 2, "scheme": "upto", "network": devchain.network, "extra": {"facilitatorAddress": signer}}
    ]
    payer_key = await h.permit2_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    req = h.requirements(devchain, pay_to, 50_000, facilitatorAddress=signer)

    # actual < max: only the actual amount moves, and the settle response says how much
    less = h.sign(devchain, payer_key, req)
    assert (await _post(client, "/verify", less)) == {"isValid": True, "payer": less.payer} | {
        k: v for k, v in (await _post(client, "/verify", less)).items() if k == "extensions"
    }
    out = await _post(client, "/settle", less, _with_amount(req, 12_345))
    assert out["success"] is True, out
    assert out["amount"] == "12345"
    assert out["payer"] == less.payer
    assert await evm.token_balance(devchain, pay_to) == 12_345
    # replay: the same authorization again (any amount) settles nothing more
    again = await _post(client, "/settle", less, _with_amount(req, 1))
    assert again["success"] is False
    assert again["errorReason"] == "duplicate_settlement"
    assert await evm.token_balance(devchain, pay_to) == 12_345

    # actual = max
    full = h.sign(devchain, payer_key, req)
    out = await _post(client, "/settle", full, req)
    assert (out["success"], out["amount"]) == (True, "50000"), out
    assert await evm.token_balance(devchain, pay_to) == 62_345

    # actual > max: refused before anything is sent
    sent = await evm.tx_count(devchain, signer)
    over = h.sign(devchain, payer_key, req)
    out = await _post(client, "/settle", over, _with_amount(req, 50_001))
    assert out["success"] is False
    assert out["errorReason"] == "invalid_upto_evm_payload_settlement_exceeds_amount"
    assert out["transaction"] == ""

    # 0: success without a transaction, and the authorization cannot be settled afterwards
    zero = h.sign(devchain, payer_key, req)
    out = await _post(client, "/settle", zero, _with_amount(req, 0))
    assert out == {"success": True, "transaction": "", "network": devchain.network, "payer": zero.payer, "amount": "0"}
    assert await evm.tx_count(devchain, signer) == sent
    later = await _post(client, "/settle", zero, _with_amount(req, 10))
    assert later["errorReason"] == "duplicate_settlement"
    assert await evm.token_balance(devchain, pay_to) == 62_345
    assert await evm.tx_count(devchain, signer) == sent


async def test_upto_verify_rejections(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    client, signer = await _facilitator(aiohttp_client, devchain, database_url)
    payer_key = await h.permit2_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    req = h.requirements(devchain, pay_to, 10_000, facilitatorAddress=signer)
    other = evm.address_of(evm.new_key())
    now = int(time.time())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"spender": p2.EXACT_PROXY_ADDRESS}, "invalid_permit2_spender"),
        ({"to": other}, "invalid_permit2_recipient_mismatch"),
        ({"facilitator": other}, "upto_facilitator_mismatch"),
        ({"deadline": now - 1}, "permit2_deadline_expired"),
        ({"valid_after": now + 3600}, "permit2_not_yet_valid"),
        ({"amount": 9_999}, "permit2_amount_mismatch"),
        ({"token": devchain.payer_addresses[0]}, "permit2_token_mismatch"),
    ]
    for override, code in cases:
        out = await _post(client, "/verify", h.sign(devchain, payer_key, req, **override))
        assert (out["isValid"], out.get("invalidReason")) == (False, code), (override, out)
    # signed by someone else
    forged = h.sign(devchain, evm.new_key(), req)
    forged.payload.payload["permit2Authorization"]["from"] = Account.from_key(payer_key).address
    out = await _post(client, "/verify", forged)
    assert out["invalidReason"] == "invalid_permit2_signature"
    # a scheme the payload was not signed for
    exact_req = h.requirements(devchain, pay_to, 10_000, scheme="exact")
    bad = h.sign(devchain, payer_key, req)
    bad.payload.accepted = exact_req
    out = await _post(client, "/verify", evm.Payment(bad.payload, req, bad.payer))
    assert out["invalidReason"] == "invalid_upto_evm_scheme"
    # no allowance to Permit2
    unapproved = await h.permit2_payer(devchain, approve=False)
    out = await _post(client, "/verify", h.sign(devchain, unapproved, req))
    assert out["invalidReason"] == "permit2_allowance_required"
    # allowance but no balance
    poor = evm.new_key()
    await h.approve_permit2(devchain, poor, devchain.token_address)
    out = await _post(client, "/verify", h.sign(devchain, poor, req))
    assert out["invalidReason"] == "permit2_insufficient_balance"
    # malformed authorization, network mismatch
    broken = h.sign(devchain, payer_key, req)
    del broken.payload.payload["permit2Authorization"]["witness"]["facilitator"]
    assert (await _post(client, "/verify", broken))["invalidReason"] == "invalid_permit2_payload_format"
    moved = h.sign(devchain, payer_key, req)
    moved.payload.accepted = msgspec.structs.replace(req, network="eip155:84532")
    out = await _post(client, "/verify", evm.Payment(moved.payload, req, moved.payer))
    assert out["invalidReason"] == "invalid_upto_evm_network_mismatch"
    # a nonce Permit2 has already consumed
    used = h.sign(devchain, payer_key, req, nonce=7)
    assert (await _post(client, "/settle", used))["success"] is True
    again = h.sign(devchain, payer_key, req, nonce=7)
    out = await _post(client, "/verify", again)
    assert out["invalidReason"] == "permit2_invalid_nonce"


async def test_upto_settle_by_another_facilitator_is_refused(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    """A witness naming another facilitator is refused by verify and settle; the proxy would refuse it too."""
    client, _ = await _facilitator(aiohttp_client, devchain, database_url)
    payer_key = await h.permit2_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    req = h.requirements(devchain, pay_to, 10_000, facilitatorAddress=evm.address_of(evm.new_key()))
    out = await _post(client, "/settle", h.sign(devchain, payer_key, req))
    assert (out["success"], out["errorReason"]) == (False, "upto_facilitator_mismatch")
    assert await evm.token_balance(devchain, pay_to) == 0


async def test_exact_permit2_any_erc20_and_eip2612(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    token = await h.deploy_token(devchain)
    client, _ = await _facilitator(aiohttp_client, devchain, database_url, token)
    pay_to = evm.address_of(evm.new_key())
    req = h.requirements(devchain, pay_to, 7_000, scheme="exact", token=token)

    # a token without EIP-3009, approved once
    payer_key = await h.permit2_payer(devchain, token)
    payment = h.sign(devchain, payer_key, req)
    verified = await _post(client, "/verify", payment)
    assert verified["isValid"] is True, verified
    out = await _post(client, "/settle", payment)
    assert (out["success"], out["amount"]) == (True, "7000"), out
    assert await evm.token_balance(devchain, pay_to, token.address) == 7_000
    assert (await _post(client, "/settle", payment))["errorReason"] == "duplicate_settlement"
    out = await _post(client, "/verify", h.sign(devchain, payer_key, req, amount=7_001))
    assert out["invalidReason"] == "permit2_amount_mismatch"
    out = await _post(client, "/verify", h.sign(devchain, payer_key, req, spender=p2.UPTO_PROXY_ADDRESS))
    assert out["invalidReason"] == "invalid_permit2_spender"

    # no approval: refused with the allowance code, then paid with an EIP-2612 permit the facilitator submits
    fresh = await h.permit2_payer(devchain, token, approve=False)
    out = await _post(client, "/verify", h.sign(devchain, fresh, req))
    assert out["invalidReason"] == "permit2_allowance_required"
    ext = await h.eip2612_extension(devchain, fresh, token, 7_000)
    sponsored = h.sign(devchain, fresh, req, extensions=ext)
    assert (await _post(client, "/verify", sponsored))["isValid"] is True
    out = await _post(client, "/settle", sponsored)
    assert out["success"] is True, out
    assert await evm.token_balance(devchain, pay_to, token.address) == 14_000
    # a permit for another amount than the Permit2 authorization, owner, token, spender or an expired one
    wrong = await h.eip2612_extension(devchain, fresh, token, 1)
    out = await _post(client, "/verify", h.sign(devchain, fresh, req, extensions=wrong))
    assert out["invalidReason"] == "permit2_2612_amount_mismatch"
    good = await h.eip2612_extension(devchain, fresh, token, 7_000)
    for field, value, code in (
        ("from", pay_to, "eip2612_from_mismatch"),
        ("asset", devchain.token_address, "eip2612_asset_mismatch"),
        ("spender", p2.EXACT_PROXY_ADDRESS, "eip2612_spender_not_permit2"),
        ("deadline", "1", "eip2612_deadline_expired"),
        ("signature", "0x1234", "invalid_eip2612_extension_format"),
    ):
        info = {**good[p2.EIP2612_EXTENSION]["info"], field: value}
        out = await _post(
            client, "/verify", h.sign(devchain, fresh, req, extensions={p2.EIP2612_EXTENSION: {"info": info}})
        )
        assert out["invalidReason"] == code, (field, out)


async def _revert_code(chain: DevChain, sender: str, to: str, data: bytes) -> str | None:
    """The reason code of an eth_call's revert (the proxies' custom errors), from the node's revert data."""
    import aiohttp

    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"from": sender, "to": to, "data": "0x" + data.hex()}, "latest"],
    }
    async with aiohttp.ClientSession() as s, s.post(chain.rpc_url, json=body) as r:
        doc = await r.json()
    error = doc.get("error") or {}
    return p2.revert_reason(error.get("data"))


async def test_upto_proxy_enforces_facilitator_and_maximum(devchain: DevChain) -> None:
    """The contract itself refuses another sender than the witness's facilitator, and more than the maximum."""
    facilitator = evm.address_of(evm.new_key())
    payer_key = await h.permit2_payer(devchain)
    req = h.requirements(devchain, evm.address_of(evm.new_key()), 10_000, facilitatorAddress=facilitator)
    auth = p2.parse_permit2(h.sign(devchain, payer_key, req).payload.payload)
    stranger = evm.address_of(evm.new_key())
    assert await _revert_code(devchain, stranger, p2.UPTO_PROXY_ADDRESS, auth.settle_calldata(10_000)) == (
        "upto_unauthorized_facilitator"
    )
    assert await _revert_code(devchain, facilitator, p2.UPTO_PROXY_ADDRESS, auth.settle_calldata(10_001)) == (
        "upto_amount_exceeds_permitted"
    )
    assert await _revert_code(devchain, facilitator, p2.UPTO_PROXY_ADDRESS, auth.settle_calldata(0)) == (
        "permit2_invalid_amount"
    )


async def test_concurrent_upto_settles_pay_once(database_url: str, aiohttp_client: Any, devchain: DevChain) -> None:
    """Several settles of one upto authorization at once (any amounts): one success, one transfer."""
    import asyncio

    client, signer = await _facilitator(aiohttp_client, devchain, database_url)
    payer_key = await h.permit2_payer(devchain)
    pay_to = evm.address_of(evm.new_key())
    req = h.requirements(devchain, pay_to, 9_000, facilitatorAddress=signer)
    payment = h.sign(devchain, payer_key, req)
    amounts = (1_000, 2_000, 3_000, 4_000)
    outs = await asyncio.gather(*(_post(client, "/settle", payment, _with_amount(req, a)) for a in amounts))
    wins = [(a, o) for a, o in zip(amounts, outs, strict=True) if o["success"]]
    assert len(wins) == 1, outs
    amount, won = wins[0]
    assert won["amount"] == str(amount)
    assert {o["errorReason"] for o in outs if not o["success"]} <= {"duplicate_settlement", "settlement_pending"}
    assert await evm.token_balance(devchain, pay_to) == amount
