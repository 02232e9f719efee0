"""Webhook delivery over real Postgres to a real HTTP receiver: every event type signed and verifiable, retries,
ordering, dead letters with replay, auto-disable, secret rotation, filters and the SSRF guard."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tests.events.conftest import FAST, HooksFactory, Receiver, wait_for
from tests.wallets.test_autopause_webhooks import _audit_actions
from x402.service.events.endpoints import SUBSCRIBABLE
from x402.service.events.outbox import API_VERSION, Event, insert_events
from x402.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify


async def _emit(database_url: str, events: list[Event]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await insert_events(conn, events)
    finally:
        await conn.close()


async def test_every_event_type_arrives_signed_in_order(
    hooks: HooksFactory, receiver: Receiver, database_url: str
) -> None:
    svc = await hooks()
    hook = await svc.endpoint(receiver.url)
    assert hook["secret"].startswith("whsec_")
    assert hook["events"] == ["*"]
    tenant = uuid.UUID(svc.tenant)
    sent = [Event(t, {"n": i}, tenant_id=tenant) for i, t in enumerate(SUBSCRIBABLE)]
    # another tenant's events never reach this endpoint
    await _emit(database_url, [Event("payment.settled", {"other": True}, tenant_id=uuid.uuid4())])
    await _emit(database_url, sent)
    ids = {str(e.id) for e in sent}

    def ours() -> list[Any]:
        # the tenant's key.created may arrive too when the endpoint existed before its dispatch
        return [g for g in receiver.got if g.doc["id"] in ids]

    await wait_for(lambda: len(ours()) >= len(sent))
    assert [g.doc["type"] for g in ours()] == list(SUBSCRIBABLE)  # in creation order
    for g, event in zip(ours(), sent, strict=True):
        assert verify(hook["secret"], g.body, g.headers[SIGNATURE_HEADER])
        assert not verify("whsec_wrong", g.body, g.headers[SIGNATURE_HEADER])
        assert g.headers[EVENT_ID_HEADER] == str(event.id)
        assert g.doc == {**event.envelope(), "createdAt": g.doc["createdAt"]}
        assert g.doc["apiVersion"] == API_VERSION
        assert g.doc["tenantId"] == svc.tenant
    # the delivery log shows each one delivered, newest first, paginated
    await wait_for(lambda: _all_delivered(svc, hook["id"], len(receiver.got)))
    status, page = await svc.call("GET", f"/v1/webhooks/{hook['id']}/deliveries?limit=5")
    assert status == 200
    assert len(page["deliveries"]) == 5
    assert page["nextCursor"]
    first = page["deliveries"][0]
    assert first["status"] == "delivered"
    assert first["responseCode"] == 200
    assert first["attempts"] == 1
    assert first["responseExcerpt"] == "thanks"
    assert isinstance(first["latencyMs"], int)
    status, rest = await svc.call("GET", f"/v1/webhooks/{hook['id']}/deliveries?limit=100&cursor={page['nextCursor']}")
    assert status == 200
    assert len(rest["deliveries"]) == len(receiver.got) - 5
    assert rest["nextCursor"] is None


async def test_filters_pick_event_types_and_ping_reaches_only_the_pinged_endpoint(
    hooks: HooksFactory, receiver: Receiver, database_url: str
) -> None:
    svc = await hooks()
    only_keys = await svc.endpoint(receiver.url + "/keys", ["key.revoked", "quota.exceeded"])
    tenant = uuid.UUID(svc.tenant)
    await _emit(database_url, [Event(t, {}, tenant_id=tenant) for t in ("payment.settled", "quota.exceeded")])
    status, ping = await svc.call("POST", f"/v1/webhooks/{only_keys['id']}/ping")
    assert status == 202
    await wait_for(lambda: len(receiver.got) >= 2)
    types = sorted(g.doc["type"] for g in receiver.got)
    assert types == ["quota.exceeded", "webhook.ping"]
    pinged = next(g for g in receiver.got if g.doc["type"] == "webhook.ping")
    assert pinged.headers[EVENT_ID_HEADER] == ping["eventId"]
    assert pinged.doc["data"] == {"endpointId": only_keys["id"]}
    status, doc = await svc.call("POST", "/v1/webhooks", json={"url": receiver.url, "events": ["payment.nope"]})
    assert (status, doc["code"]) == (422, "invalid_webhook")
    status, doc = await svc.call("PATCH", f"/v1/webhooks/{only_keys['id']}", json={"events": []})
    assert (status, doc["code"]) == (422, "invalid_webhook")


async def test_ssrf_guard_refuses_private_targets(hooks: HooksFactory) -> None:
    svc = await hooks(allow_private_outbound=False)
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://localhost/x", "ftp://example.com/x", "nope"):
        status, doc = await svc.call("POST", "/v1/webhooks", json={"url": url})
        # malformed: 400; well-formed but private: 422 (the SSRF guard)
        assert (status, doc["code"]) in {(400, "invalid_webhook_url"), (422, "invalid_webhook_url")}, url
    status, doc = await svc.call("POST", "/v1/webhooks", json={"url": "https://hooks.example.com/x"})
    assert status == 201
    status, doc = await svc.call("PATCH", f"/v1/webhooks/{doc['id']}", json={"url": "http://[::1]/x"})
    assert (status, doc["code"]) == (422, "invalid_webhook_url")


async def test_retries_on_500_timeout_and_dropped_connection_keep_order(
    hooks: HooksFactory, receiver: Receiver, database_url: str
) -> None:
    svc = await hooks(options=FAST.__class__(**{**_fields(FAST), "min_attempts": 5}))
    hook = await svc.endpoint(receiver.url)
    receiver.plan = ["500", "drop", "slow", "ok"]
    tenant = uuid.UUID(svc.tenant)
    first, second = (
        Event("payment.settled", {"n": 1}, tenant_id=tenant),
        Event("payment.failed", {"n": 2}, tenant_id=tenant),
    )
    await _emit(database_url, [first, second])
    await wait_for(lambda: len(receiver.ok()) >= 2)
    ids = [g.headers[EVENT_ID_HEADER] for g in receiver.got]
    # the first event is tried four times (500, dropped, timed out, ok) before the second is sent at all
    assert ids == [str(first.id)] * 4 + [str(second.id)]
    gaps = [b.at - a.at for a, b in zip(receiver.got, receiver.got[1:4], strict=False)]
    assert all(gap > 0 for gap in gaps)
    await wait_for(lambda: _all_delivered(svc, hook["id"], 2))
    _, page = await svc.call("GET", f"/v1/webhooks/{hook['id']}/deliveries")
    by_event = {d["eventId"]: d for d in page["deliveries"]}
    assert by_event[str(first.id)]["attempts"] == 4
    assert by_event[str(first.id)]["status"] == "delivered"
    assert by_event[str(second.id)]["attempts"] == 1


async def test_dead_letters_replay_and_auto_disable(hooks: HooksFactory, receiver: Receiver, database_url: str) -> None:
    options = FAST.__class__(**{**_fields(FAST), "disable_failures": 6})
    svc = await hooks(options=options)
    broken = await svc.endpoint(receiver.url + "/broken")
    watcher = await svc.endpoint(receiver.url + "/watch", ["webhook.disabled"])
    receiver.default = "ok"
    broken_path = "/hook/broken"

    def to_broken() -> list[Any]:
        return [g for g in receiver.got if g.headers.get("X402-Delivery-Id") and g.doc["type"] != "webhook.disabled"]

    receiver.plan = ["500"] * 6
    tenant = uuid.UUID(svc.tenant)
    events = [Event("payment.settled", {"n": i}, tenant_id=tenant) for i in range(2)]
    await _emit(database_url, events)
    # each event fails three times and is dead-lettered; six failures in a row disable the endpoint
    await wait_for(lambda: any(g.doc["type"] == "webhook.disabled" for g in receiver.got))
    assert len(to_broken()) == 6
    disabled = next(g for g in receiver.got if g.doc["type"] == "webhook.disabled")
    assert disabled.doc["data"]["endpointId"] == broken["id"]
    assert verify(watcher["secret"], disabled.body, disabled.headers[SIGNATURE_HEADER])
    status, ep = await svc.call("GET", f"/v1/webhooks/{broken['id']}")
    assert status == 200
    assert ep["active"] is False
    assert "consecutive" in ep["disabledReason"]
    status, letters = await svc.call("GET", f"/v1/webhooks/dead-letters?endpointId={broken['id']}")
    assert status == 200
    assert len(letters["deadLetters"]) == 2
    assert {d["eventId"] for d in letters["deadLetters"]} == {str(e.id) for e in events}
    one = letters["deadLetters"][-1]
    status, inspected = await svc.call("GET", f"/v1/webhooks/dead-letters/{one['id']}")
    assert status == 200
    assert inspected["event"]["id"] == one["eventId"]
    assert inspected["attempts"] == 3
    assert inspected["lastError"] == "HTTP 500"
    assert inspected["responseCode"] == 500
    status, doc = await svc.call("GET", "/v1/webhooks/dead-letters?type=payment.failed")
    assert status == 200
    assert doc["deadLetters"] == []
    # re-enable, then replay one, then the rest by filter; the receiver answers now
    status, ep = await svc.call("PATCH", f"/v1/webhooks/{broken['id']}", json={"active": True})
    assert status == 200
    assert ep["active"]
    assert ep["disabledReason"] is None
    assert ep["consecutiveFailures"] == 0
    status, replayed = await svc.call("POST", f"/v1/webhooks/dead-letters/{one['id']}/replay")
    assert status == 200
    assert replayed["replayCount"] == 1
    await wait_for(lambda: any(g.answer == "ok" and g.path_event == one["eventId"] for g in _tagged(receiver)))
    status, many = await svc.call(
        "POST", "/v1/webhooks/dead-letters/replay", json={"endpointId": broken["id"], "type": "payment.settled"}
    )
    assert status == 200
    assert many["replayed"] == 1
    await wait_for(lambda: {g.path_event for g in _tagged(receiver) if g.answer == "ok"} >= {str(e.id) for e in events})
    audits = await _audit_actions(database_url, broken["id"])
    assert {"webhook.disable", "webhook.dead_letter.replay", "webhook.update", "webhook.create"} <= set(audits)
    conn = await asyncpg.connect(database_url)
    try:
        action = await conn.fetchval(
            "SELECT after FROM audit_log WHERE action = 'webhook.dead_letter.replay_many' ORDER BY id DESC LIMIT 1"
        )
    finally:
        await conn.close()
    assert action is not None
    assert broken["id"] in action
    assert broken_path


async def test_secret_rotation_signs_with_both_during_the_overlap(
    hooks: HooksFactory, receiver: Receiver, database_url: str
) -> None:
    svc = await hooks()
    hook = await svc.endpoint(receiver.url)
    status, rotated = await svc.call("POST", f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlapSeconds": 600})
    assert status == 200
    assert rotated["secret"] != hook["secret"]
    assert rotated["previousSecretExpiresAt"]
    tenant = uuid.UUID(svc.tenant)
    await _emit(database_url, [Event("payment.verified", {}, tenant_id=tenant)])
    await wait_for(lambda: len(receiver.got) >= 1)
    got = receiver.got[0]
    assert got.headers[SIGNATURE_HEADER].count("v1=") == 2
    assert verify(hook["secret"], got.body, got.headers[SIGNATURE_HEADER])
    assert verify(rotated["secret"], got.body, got.headers[SIGNATURE_HEADER])
    status, again = await svc.call("POST", f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlapSeconds": 0})
    assert status == 200
    assert again["previousSecretExpiresAt"] is None
    await _emit(database_url, [Event("payment.verified", {}, tenant_id=tenant)])
    await wait_for(lambda: len(receiver.got) >= 2)
    got = receiver.got[1]
    assert got.headers[SIGNATURE_HEADER].count("v1=") == 1
    assert verify(again["secret"], got.body, got.headers[SIGNATURE_HEADER])
    assert not verify(rotated["secret"], got.body, got.headers[SIGNATURE_HEADER])
    # an old signature is refused past the tolerance
    assert not verify(again["secret"], got.body, got.headers[SIGNATURE_HEADER], now=10**10)
    status, doc = await svc.call("POST", f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlapSeconds": -1})
    assert (status, doc["code"]) == (422, "invalid_webhook")


async def _all_delivered(svc: Any, hook_id: str, n: int) -> bool:
    status, page = await svc.call("GET", f"/v1/webhooks/{hook_id}/deliveries?status=delivered&limit=100")
    return status == 200 and len(page["deliveries"]) >= n


class _Tagged:
    def __init__(self, answer: str, event: str) -> None:
        self.answer = answer
        self.path_event = event


def _tagged(receiver: Receiver) -> list[_Tagged]:
    return [_Tagged(g.answer, g.headers[EVENT_ID_HEADER]) for g in receiver.got]


def _fields(options: Any) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__slots__}
