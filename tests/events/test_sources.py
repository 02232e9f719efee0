"""Event sources end to end, to a real receiver: quota thresholds (also by e-mail through a real local SMTP server),
resource.down / resource.up from the registry prober, key.created / key.revoked from the key API."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from tests.events.conftest import HooksFactory, Receiver, wait_for
from tests.harness.services import free_port
from tests.platform.conftest import VERIFY_BODY
from tests.registry.conftest import resource
from x402.service.appkeys import OUTBOUND, REGISTRY
from x402.service.registry.prober import probe_due
from x402.service.storage.scope import system_scope
from x402.webhooks import SIGNATURE_HEADER, verify

TIERS = {"free": {"monthlyQuota": 10, "ratePerSecond": 1000}}


class _Inbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    """A real SMTP server on a free local port."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def _types(receiver: Receiver) -> list[str]:
    return [g.doc["type"] for g in receiver.got]


@pytest.mark.allow_blocking
async def test_quota_thresholds_and_exceeded_are_events_headers_and_mail(
    hooks: HooksFactory, receiver: Receiver, smtp: tuple[int, _Inbox]
) -> None:
    port, inbox = smtp
    svc = await hooks(
        tiers_override=TIERS,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="x402@example.com",
        smtp_to=("billing@example.com",),
        smtp_tls="none",
    )
    hook = await svc.endpoint(receiver.url, ["quota.threshold", "quota.exceeded"])
    warnings = []
    for _ in range(11):
        r = await svc.client.post("/verify", json=VERIFY_BODY, headers=svc.h)
        warnings.append(r.headers.get("X402-Quota-Warning"))
    assert warnings == [None] * 7 + ["80", "90", "100", "100"]
    await wait_for(lambda: len(receiver.got) >= 4)
    assert _types(receiver) == ["quota.threshold"] * 3 + ["quota.exceeded"]
    assert [g.doc["data"].get("threshold") for g in receiver.got] == [80, 90, 100, None]
    last = receiver.got[-1].doc["data"]
    assert (last["used"], last["limit"], last["tier"]) == (11, 10, "free")
    for g in receiver.got:
        assert verify(hook["secret"], g.body, g.headers[SIGNATURE_HEADER])
        assert g.doc["tenantId"] == svc.tenant
    await wait_for(lambda: len(inbox.messages) >= 4)
    mails = [message_from_bytes(m) for m in inbox.messages]
    assert all(m["To"] == "billing@example.com" and svc.tenant in m["Subject"] for m in mails)
    assert sorted(str(m["Subject"]).split(" reached ")[-1][:3] for m in mails[:3]) == ["100", "80%", "90%"]
    assert "exceeded" in str(mails[3]["Subject"])


async def test_probe_transitions_are_resource_down_and_up(hooks: HooksFactory, receiver: Receiver) -> None:
    svc = await hooks()
    await svc.endpoint(receiver.url, ["resource.down", "resource.up"])
    port = free_port()
    url = f"http://127.0.0.1:{port}/paid"
    status, created = await svc.call("POST", "/v1/resources", json=resource(url))
    assert status == 201, created
    app = svc.client.app
    with system_scope("test: the prober's pass, as the service runs it"):
        assert await probe_due(app[REGISTRY], app[OUTBOUND], every=0.0) == 1  # nothing listens: down
        assert await probe_due(app[REGISTRY], app[OUTBOUND], every=0.0) == 1  # still down: no second event
    origin = web.Application()

    async def paid(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    origin.router.add_get("/paid", paid)
    server = TestServer(origin, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        with system_scope("test: the prober's pass, as the service runs it"):
            assert await probe_due(app[REGISTRY], app[OUTBOUND], every=0.0) == 1  # answers: up
    finally:
        await server.close()
    await wait_for(lambda: len(receiver.got) >= 2)
    assert _types(receiver) == ["resource.down", "resource.up"]
    down, up = (g.doc["data"] for g in receiver.got)
    assert (down["resourceId"], down["url"], down["reason"], down["previousStatus"]) == (
        created["id"],
        url,
        "unreachable",
        "unknown",
    )
    assert (up["reason"], up["previousStatus"]) == (None, "down")


async def test_key_changes_reach_the_endpoint(hooks: HooksFactory, receiver: Receiver) -> None:
    svc = await hooks()
    await svc.endpoint(receiver.url, ["key.created", "key.revoked"])
    status, key = await svc.call("POST", f"/v1/tenants/{svc.tenant}/keys", json={"scopes": ["verify"]})
    assert status == 201, key
    status, _ = await svc.call("DELETE", f"/v1/keys/{key['id']}")
    assert status == 200
    await wait_for(lambda: len(receiver.got) >= 2)
    assert _types(receiver) == ["key.created", "key.revoked"]
    assert all(g.doc["data"]["key"]["id"] == key["id"] for g in receiver.got)
    assert "key" not in receiver.got[0].doc["data"]["key"]  # never the secret
