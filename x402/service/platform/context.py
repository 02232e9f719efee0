"""The platform's per-app state, stored under one AppKey (``x402.service.appkeys.PLATFORM``)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from x402.service.platform.auth import Authenticator
from x402.service.platform.limiting import QuotaCounter, RateLimiter
from x402.service.platform.sessions import SessionStore
from x402.service.platform.tenants import TenantStore
from x402.service.platform.tiers import Tier
from x402.service.platform.writer import PaymentWriter
from x402.service.settings import Settings


@dataclass(slots=True)
class Platform:
    """Everything the platform routes, middleware and facilitator hooks share."""

    settings: Settings
    tiers: dict[str, Tier]
    store: TenantStore
    auth: Authenticator
    limiter: RateLimiter
    quota: QuotaCounter
    writer: PaymentWriter
    sessions: SessionStore

    def tier(self, name: str) -> Tier:
        """The named tier; an unknown name (removed from config) falls back to free."""
        return self.tiers.get(name) or self.tiers["free"]


#: Headers the platform adds to this request's answer (quota warnings).
RESPONSE_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("x402_platform_headers")


def response_headers(request: web.Request) -> dict[str, str]:
    """The mutable header dict for this request's answer."""
    headers = request.get(RESPONSE_HEADERS)
    if headers is None:
        headers = {}
        request[RESPONSE_HEADERS] = headers
    return headers
