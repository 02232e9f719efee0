"""Trust scores from constructed histories: exact values (docs/trust.md), wash trading and circular flows drop them,
and the scores reach the wallet policy, registry search and the risk assessment."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from solders.pubkey import Pubkey

from chains.base import PaymentContext
from chains.evm.devchain import DevChain
from tests.harness.evm import token_balance
from tests.harness.paychain import EvmChain
from tests.proxy.conftest import PRICE, Upstream, listing
from tests.wallets.conftest import ServiceFactory, new_wallet, service_factory
from x402.service.appkeys import DB, FACILITATOR, TRUST
from x402.service.proxy import calls
from x402.service.registry.ranking import W_TRUST
from x402.service.storage.scope import system_scope
from x402.wire.models import PaymentRequirements

AMOUNT = 10_000


@pytest.fixture
async def plain(devchain: DevChain, database_url: str, aiohttp_client: Any) -> TestClient[Any, Any]:
    """A keys-off service (the histories here are written straight into its database)."""
    make: ServiceFactory = service_factory(EvmChain(devchain), database_url, aiohttp_client, keys_on=False)
    return await make(trust_interval=0)


async def _paid_calls(client: TestClient[Any, Any], resource_id: str, wallets: list[uuid.UUID], pay_to: str) -> None:
    """One paid routed call per entry of ``wallets`` (a wallet may repeat), AMOUNT each."""
    with system_scope("test: a constructed history"):
        for w in wallets:
            await calls.record(
                client.app[DB],
                calls.Call(
                    id=uuid.uuid4(),
                    tenant_id=None,
                    wallet_id=w,
                    resource_id=uuid.UUID(resource_id),
                    owner_tenant_id=None,
                    url="https://example.com/",
                    method="GET",
                    status="paid",
                    fee_bps=0,
                    latency_ms=5,
                    amount=AMOUNT,
                    payer=f"0x{w.hex[:40]:0>40}",
                    pay_to=pay_to,
                ),
            )


async def _probes(client: TestClient[Any, Any], resource_id: str, ok: int, total: int) -> None:
    with system_scope("test: probe counts"):
        await client.app[DB].execute(
            "UPDATE resources SET probes_ok = $2, probes_total = $3 WHERE id = $1", uuid.UUID(resource_id), ok, total
        )


async def _score(client: TestClient[Any, Any], kind: str, subject: str) -> dict[str, Any]:
    found: dict[str, Any] | None = await client.app[TRUST].get(kind, subject)
    assert found is not None, (kind, subject)
    return found


async def test_exact_resource_scores_and_a_wash_traded_resource_drops(
    plain: TestClient[Any, Any], upstream: Upstream, devchain: DevChain
) -> None:
    honest = await listing(plain, devchain, upstream.paid_url, upstream.pay_to)
    washed = await listing(plain, devchain, upstream.base_url + "/free", upstream.pay_to)
    five = [uuid.uuid4() for _ in range(5)]
    for res in (honest, washed):
        await _paid_calls(plain, res["id"], five * 2, upstream.pay_to)  # 10 calls, 5 payers, equal shares
        await _probes(plain, res["id"], 9, 10)
    await plain.app[TRUST].refresh()
    # .25*.9 + .20*1 + .15*(10/20) + .10*0 + .10*log10(1+100000)/9 + .20*1 = .755556 -> 76, no penalty
    for res in (honest, washed):
        doc = await _score(plain, "resource", res["id"])
        assert doc["score"] == 76, doc
        assert doc["factors"]["base"] == 76
        assert doc["factors"]["washPenalty"] == 0
        assert doc["factors"]["topPayerShare"] == 0.2
    # one payer then produces most of the volume: 40 more calls from the first wallet (42 of 50 calls)
    await _paid_calls(plain, washed["id"], [five[0]] * 40, upstream.pay_to)
    assert await plain.app[TRUST].refresh() >= 1  # incremental: only what changed since the watermark
    doc = await _score(plain, "resource", washed["id"])
    # base: 22.5 + 20 + 15 + 0 + 10*log10(500001)/9 (6.3322) + 20 = 83.83 -> 84; wash: round(120*(0.84-0.5)) = 41
    assert doc["factors"]["base"] == 84
    assert doc["factors"]["topPayerShare"] == 0.84
    assert doc["factors"]["washPenalty"] == 41
    assert doc["score"] == 43
    assert (await _score(plain, "resource", honest["id"]))["score"] == 76
    # registry search: minTrust filters, and trust is a ranking input
    r = await plain.get("/discovery/search", params={"query": "", "minTrust": "50"})
    assert r.status == 200, await r.text()
    listed = {item["resource"] for item in (await r.json())["resources"]}
    assert upstream.paid_url in listed
    assert upstream.base_url + "/free" not in listed
    r = await plain.get("/discovery/search", params={"minTrust": "101"})
    assert r.status == 400
    assert (await r.json())["code"] == "invalid_min_trust"


async def _ranked(client: TestClient[Any, Any], urls: set[str]) -> list[tuple[str, float]]:
    """``(url, search score)`` of ``urls`` in the order ``/discovery/search`` ranks them (empty query)."""
    r = await client.get("/discovery/search", params={"query": "", "limit": "50"})
    assert r.status == 200, await r.text()
    return [(i["resource"], i["metadata"]["score"]) for i in (await r.json())["resources"] if i["resource"] in urls]


async def test_trust_alone_orders_otherwise_equal_listings(
    plain: TestClient[Any, Any], upstream: Upstream, devchain: DevChain
) -> None:
    a = await listing(plain, devchain, upstream.paid_url, upstream.pay_to)
    b = await listing(plain, devchain, upstream.base_url + "/free", upstream.pay_to)
    ids = [uuid.UUID(a["id"]), uuid.UUID(b["id"])]
    urls = {upstream.paid_url, upstream.base_url + "/free"}
    with system_scope("test: the same freshness for both listings"):
        await plain.app[DB].execute("UPDATE resources SET last_updated = now() WHERE id = ANY($1::uuid[])", ids)
    five = [uuid.uuid4() for _ in range(5)]
    # the same calls, volume and probes for both; only who pays differs (b: one wallet pays 9 of 10)
    await _paid_calls(plain, a["id"], five * 2, upstream.pay_to)
    await _paid_calls(plain, b["id"], [five[0]] * 9 + [five[1]], upstream.pay_to)
    for res in (a, b):
        await _probes(plain, res["id"], 9, 10)
    await plain.app[TRUST].refresh()
    ta, tb = (await _score(plain, "resource", a["id"]))["score"], (await _score(plain, "resource", b["id"]))["score"]
    assert ta > tb, (ta, tb)
    ranked = await _ranked(plain, urls)
    assert [u for u, _ in ranked] == [upstream.paid_url, upstream.base_url + "/free"]
    assert ranked[0][1] - ranked[1][1] == pytest.approx(W_TRUST * (ta - tb) / 100, abs=2e-4)

    # the scores flip (a is now wash-traded, b has 41 payers; still 50 calls each), and so does the order
    await _paid_calls(plain, a["id"], [five[0]] * 40, upstream.pay_to)
    await _paid_calls(plain, b["id"], [uuid.uuid4() for _ in range(40)], upstream.pay_to)
    await plain.app[TRUST].refresh()
    ta, tb = (await _score(plain, "resource", a["id"]))["score"], (await _score(plain, "resource", b["id"]))["score"]
    assert tb > ta, (ta, tb)
    ranked = await _ranked(plain, urls)
    assert [u for u, _ in ranked] == [upstream.base_url + "/free", upstream.paid_url]
    assert ranked[0][1] - ranked[1][1] == pytest.approx(W_TRUST * (tb - ta) / 100, abs=2e-4)


async def _settlement(client: TestClient[Any, Any], payer: str, pay_to: str, amount: int) -> None:
    with system_scope("test: a constructed settlement"):
        await client.app[DB].execute(
            """INSERT INTO settlements (network, asset, payer, nonce, payload_hash, status, pay_to, amount,
                                        x402_version, payload, requirements)
               VALUES ('eip155:31337', '0xasset', $1, $2, '\\x00', 'confirmed', $3, $4, 2, '{}', '{}')""",
            payer,
            uuid.uuid4().hex,
            pay_to,
            amount,
        )


async def test_circular_flow_and_risk_flags_lower_address_scores_and_reach_the_risk_assessment(
    plain: TestClient[Any, Any],
) -> None:
    a = "0x" + "a1" * 20
    b = "0x" + "b2" * 20
    c = "0x" + "c3" * 20
    await _settlement(plain, a, b, 5000)
    await _settlement(plain, b, a, 5000)  # A -> B -> A
    await _settlement(plain, c, b, 5000)
    await plain.app[TRUST].refresh()
    # .30*1 + .20*(1/20) + .15*0 + .15*log10(5001)/9 + .20*(1/5) = .41165 -> 41
    doc = await _score(plain, "address", c)
    assert (doc["score"], doc["factors"]["circularFlow"]) == (41, False)
    doc = await _score(plain, "address", a)
    assert (doc["factors"]["base"], doc["factors"]["circularPenalty"], doc["score"]) == (41, 25, 16)
    r = await plain.post("/v1/risk/lists/mixer", json={"addresses": [c]})
    assert r.status == 200, await r.text()
    assert await plain.app[TRUST].refresh() == 1  # the list change alone recomputes c
    doc = await _score(plain, "address", c)
    assert (doc["factors"]["riskFlags"], doc["score"]) == (["mixer"], 1)
    # extensions.risk.trust of the facilitator's assessment
    req = PaymentRequirements(
        scheme="exact", network="eip155:31337", amount="5000", asset="0x" + "00" * 20, pay_to=b, max_timeout_seconds=60
    )
    ctx = PaymentContext(x402_version=2, scheme="exact", network="eip155:31337", payload={}, requirements=req)
    gate = plain.app[FACILITATOR].risk
    assert gate is not None
    wire = (await gate.assess(ctx, payer=a)).to_wire()
    assert wire["trust"]["score"] == 16
    assert wire["trust"]["factors"]["circularFlow"] is True
    json.dumps(wire)  # wire-safe


async def _computed(client: TestClient[Any, Any]) -> dict[tuple[str, str], Any]:
    with system_scope("test: when each score was computed"):
        rows = await client.app[DB].fetch("SELECT kind, subject, computed_at FROM trust_scores")
    return {(r["kind"], r["subject"]): r["computed_at"] for r in rows}


async def _recomputed(client: TestClient[Any, Any], before: dict[tuple[str, str], Any]) -> set[tuple[str, str]]:
    """The subjects one refresh pass wrote (it returns how many)."""
    n = await client.app[TRUST].refresh()
    after = await _computed(client)
    changed = {k for k, at in after.items() if before.get(k) != at}
    assert n == len(changed), (n, changed)
    return changed


async def test_refresh_recomputes_only_what_a_change_touches_and_risk_list_changes_count(
    plain: TestClient[Any, Any], upstream: Upstream, devchain: DevChain
) -> None:
    payee = "0x" + "b2" * 20
    payers = ["0x" + secrets.token_hex(20) for _ in range(12)]
    for p in payers:
        await _settlement(plain, p, payee, 5000)
    res = await listing(plain, devchain, upstream.paid_url, upstream.pay_to)
    assert await _recomputed(plain, {}) == {("address", p) for p in payers} | {("resource", res["id"])}
    assert await _recomputed(plain, await _computed(plain)) == set()  # nothing changed: nothing recomputed
    clean = await _score(plain, "address", payers[5])
    assert clean["factors"]["riskFlags"] == []

    # one more settlement of one payer: that payer alone, not the other 11 nor the listing
    await _settlement(plain, payers[3], payee, 5000)
    assert await _recomputed(plain, await _computed(plain)) == {("address", payers[3])}

    # a risk-list entry: the listed payer and the listing that pays to a listed address, nothing else
    r = await plain.post("/v1/risk/lists/mixer", json={"addresses": [payers[5], upstream.pay_to]})
    assert (r.status, (await r.json())["added"]) == (200, 2)
    assert await _recomputed(plain, await _computed(plain)) == {("address", payers[5]), ("resource", res["id"])}
    doc = await _score(plain, "address", payers[5])
    assert (doc["factors"]["riskFlags"], doc["score"]) == (["mixer"], clean["score"] - 40)
    assert (await _score(plain, "resource", res["id"]))["factors"]["riskFlags"] == ["mixer"]
    # an entry on a list that is not a risk flag changes no score
    r = await plain.post("/v1/risk/lists/allow", json={"addresses": [payers[7]]})
    assert r.status == 200, await r.text()
    assert await _recomputed(plain, await _computed(plain)) == set()

    # removing the entry (no row is left behind) recomputes the same subjects, and the flag is gone
    r = await plain.delete("/v1/risk/lists/mixer", json={"addresses": [payers[5], upstream.pay_to]})
    assert (r.status, (await r.json())["removed"]) == (200, 2)
    assert await _recomputed(plain, await _computed(plain)) == {("address", payers[5]), ("resource", res["id"])}
    doc = await _score(plain, "address", payers[5])
    assert (doc["score"], doc["factors"]) == (clean["score"], clean["factors"])


async def test_min_resource_trust_refuses_low_trust_resources(
    plain: TestClient[Any, Any], upstream: Upstream, devchain: DevChain
) -> None:
    res = await listing(plain, devchain, upstream.paid_url, upstream.pay_to)
    wallet = await new_wallet(plain, EvmChain(devchain), {"minResourceTrust": 50})
    assert wallet["policy"]["minResourceTrust"] == 50
    before = await token_balance(devchain, upstream.pay_to)
    r = await plain.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]})
    assert r.status == 403, await r.text()
    doc = await r.json()
    assert (doc["code"], doc["trust"], doc["minResourceTrust"]) == ("resource_trust_too_low", None, 50)
    r = await plain.post(f"/v1/wallets/{wallet['id']}/pay", json={"url": upstream.paid_url})
    assert (await r.json())["code"] == "resource_trust_too_low"
    await _paid_calls(plain, res["id"], [uuid.uuid4() for _ in range(5)] * 2, upstream.pay_to)
    await _probes(plain, res["id"], 9, 10)
    await plain.app[TRUST].refresh()  # 76 now
    r = await plain.post("/v1/call", json={"resource": res["id"], "wallet": wallet["id"]})
    assert r.status == 200, await r.text()
    assert await token_balance(devchain, upstream.pay_to) == before + PRICE
    r = await plain.get(f"/v1/wallets/{wallet['id']}/trust")
    assert r.status == 200
    doc = await r.json()
    assert doc["factors"]["payments"] == 1
    r = await plain.put(f"/v1/wallets/{wallet['id']}/policy", json={"minResourceTrust": 101})
    assert (r.status, (await r.json())["code"]) == (422, "invalid_policy")


async def test_the_risk_stage_reuses_a_score_until_a_refresh_changes_it(plain: TestClient[Any, Any]) -> None:
    a = "0x" + secrets.token_hex(20)
    b = "0x" + secrets.token_hex(20)
    req = PaymentRequirements(
        scheme="exact", network="eip155:31337", amount="5000", asset="0x" + "00" * 20, pay_to=b, max_timeout_seconds=60
    )
    ctx = PaymentContext(x402_version=2, scheme="exact", network="eip155:31337", payload={}, requirements=req)
    gate = plain.app[FACILITATOR].risk
    assert gate is not None
    assert (await gate.assess(ctx, payer=a)).to_wire()["trust"] == {"score": 0, "factors": None}
    await _settlement(plain, a, b, 5000)
    # the verify path keeps the score it read for a few seconds (one query per payer, not three round trips per
    # request) ...
    assert (await gate.assess(ctx, payer=a)).to_wire()["trust"]["score"] == 0
    # ... and a pass that recomputes scores replaces it at once
    await plain.app[TRUST].refresh()
    assert (await gate.assess(ctx, payer=a.upper().replace("0X", "0x"))).to_wire()["trust"]["score"] > 0


def _case_twins() -> tuple[str, str]:
    """Two valid Solana addresses that differ only in the case of one letter (base58 is case-sensitive)."""
    while True:
        a = str(Pubkey.new_unique())
        for i, ch in enumerate(a):
            if ch.isalpha() and ch.swapcase() not in "0OIl":
                b = a[:i] + ch.swapcase() + a[i + 1 :]
                try:
                    if len(bytes(Pubkey.from_string(b))) == 32:
                        return a, b
                except ValueError:
                    continue


async def test_solana_payers_keep_their_case_and_evm_payers_match_any_case(plain: TestClient[Any, Any]) -> None:
    """Trust keys addresses as the risk engine does: EVM lower-case, Solana base58 exactly as written."""
    upper, lower = _case_twins()
    payee = str(Pubkey.new_unique())
    for _ in range(3):
        await _settlement(plain, upper, payee, 5000)
    await _settlement(plain, lower, payee, 5000)
    evm = "0x" + "aB" * 20
    await _settlement(plain, evm, "0x" + "d4" * 20, 5000)
    await plain.app[TRUST].refresh()
    twins = await _score(plain, "address", upper), await _score(plain, "address", lower)
    assert twins[0]["score"] != twins[1]["score"]  # not one merged history
    assert twins[0]["factors"] != twins[1]["factors"]
    assert await _score(plain, "address", evm.upper().replace("0X", "0x")) == await _score(plain, "address", evm)
    assert await plain.app[TRUST].address_score(evm.lower()) == await _score(plain, "address", evm)
