"""One authorization, one accepted encoding: amounts with a leading zero (or as JSON numbers) are refused on the
real chain path of /verify and /settle, and nothing is transferred."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm


@pytest.mark.parametrize(
    ("where", "value", "reason"),
    [
        ("authorization.value", "010000", "invalid_payload"),
        ("authorization.value", 10_000, "invalid_payload"),
        ("authorization.validAfter", "00", "invalid_payload"),
        ("requirements.amount", "010000", "invalid_payment_requirements"),
    ],
)
async def test_non_canonical_amounts_are_refused(
    database_url: str, aiohttp_client: Any, devchain: DevChain, where: str, value: Any, reason: str
) -> None:
    client, _ = await evm.facilitator_client(aiohttp_client, devchain, database_url)
    payment = await evm.new_payment(devchain, 10_000)
    pay_to = payment.requirements.pay_to
    good = payment.body()
    r = await client.post("/verify", json=good)
    assert (await r.json())["isValid"] is True  # the canonical spelling of the same authorization passes

    body = copy.deepcopy(good)
    if where.startswith("authorization."):
        body["paymentPayload"]["payload"]["authorization"][where.split(".")[1]] = value
    else:
        body["paymentRequirements"]["amount"] = value
        body["paymentPayload"]["accepted"]["amount"] = value
    r = await client.post("/verify", json=body)
    out = await r.json()
    assert r.status == 200, out
    assert out["isValid"] is False
    assert out["invalidReason"] == reason, out
    r = await client.post("/settle", json=body)
    out = await r.json()
    assert out["success"] is False
    assert out["errorReason"] == reason, out
    assert await evm.token_balance(devchain, pay_to) == 0
