"""Webhook test parts: a real aiohttp receiver with scripted failures, and a keys-on service that delivers fast."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.platform.conftest import bearer, new_key, new_tenant
from x402.service.app import create_app
from x402.service.appkeys import AppOptions
from x402.service.events.delivery import DeliveryOptions
from x402.service.settings import Settings

MASTER_KEY = "cd" * 32
#: Retries within a test's time: tiny backoff, dead after 3 failures, disabled after 3 (no time window).
FAST = DeliveryOptions(
    backoff_base=0.02,
    backoff_cap=0.1,
    min_attempts=3,
    retry_window=0,
    disable_failures=1000,
    disable_window=0,
    timeout=1.0,
    interval=0.02,
)


@dataclass
class Got:
    """One request the receiver saw."""

    at: float
    headers: dict[str, str]
    body: bytes
    answer: str

    @property
    def doc(self) -> dict[str, Any]:
        """The envelope."""
        out: dict[str, Any] = json.loads(self.body)
        return out


@dataclass
class Receiver:
    """A real HTTP receiver; ``plan`` scripts the next answers: ok, 500, slow (past the timeout), drop."""

    url: str = ""
    got: list[Got] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    default: str = "ok"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record, then answer as planned."""
        body = await request.read()
        answer = self.plan.pop(0) if self.plan else self.default
        self.got.append(Got(time.monotonic(), dict(request.headers), body, answer))
        if answer == "500":
            return web.Response(status=500, text="receiver broke")
        if answer == "slow":
            await asyncio.sleep(3.0)
        if answer == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return web.Response(text="thanks")

    def ok(self) -> list[Got]:
        """Requests answered 2xx."""
        return [g for g in self.got if g.answer == "ok"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on a free local port, closed after the test."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    server = TestServer(app)
    await server.start_server()
    rec.url = str(server.make_url("/hook"))
    try:
        yield rec
    finally:
        await server.close()


async def wait_for(check: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0) -> None:
    """Poll ``check`` until true (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def quiet(database_url: str) -> None:
    """Wait until the worker has dispatched every event written so far."""
    conn = await asyncpg.connect(database_url)
    try:

        async def none_left() -> bool:
            return not await conn.fetchval("SELECT count(*) FROM provider_events WHERE NOT dispatched")

        await wait_for(none_left)
    finally:
        await conn.close()


@dataclass
class Hooks:
    """A running service, a tenant with a key, and helpers."""

    client: Any
    tenant: str
    key: str

    @property
    def h(self) -> dict[str, str]:
        """The tenant key's headers."""
        return bearer(self.key)

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """A request with the tenant key; (status, JSON or None)."""
        kw.setdefault("headers", self.h)
        r = await self.client.request(method, path, **kw)
        text = await r.text()
        return r.status, (json.loads(text) if text else None)

    async def endpoint(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        """Register an endpoint; its JSON with the one-time secret."""
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = events
        status, doc = await self.call("POST", "/v1/webhooks", json=body)
        assert status == 201, doc
        out: dict[str, Any] = doc
        return out


HooksFactory = Callable[..., Awaitable[Hooks]]


@pytest.fixture
def hooks(settings: Settings, redis_url: str, aiohttp_client: Any) -> HooksFactory:
    """Build a keys-on service (settings overrides as keywords, ``options`` for DeliveryOptions) and a tenant."""

    async def make(options: DeliveryOptions = FAST, **kw: Any) -> Hooks:
        from tests.platform.conftest import ADMIN

        kw.setdefault("allow_private_outbound", True)
        s = settings.with_(require_api_keys=True, admin_token=ADMIN, redis_url=redis_url, master_key=MASTER_KEY, **kw)
        client = await aiohttp_client(create_app(s, options=AppOptions(webhook_options=options)))
        tenant = await new_tenant(client, "hooks")
        key = await new_key(client, tenant, ["verify", "settle", "admin", "registry"])
        # the tenant's own key.created is fanned out before the test adds endpoints (tests see only their events)
        assert s.database_url is not None
        await quiet(s.database_url)
        return Hooks(client, tenant, key["key"])

    return make
