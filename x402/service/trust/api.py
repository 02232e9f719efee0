"""Installs the trust service (``TRUST``): the score table's background pass and lookups."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from x402.service.appkeys import DB, SETTINGS, TRUST
from x402.service.trust.service import TrustService


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    service = TrustService(app[DB], app[SETTINGS].trust_interval)
    app[TRUST] = service
    service.start()
    yield
    await service.close()


def install(app: web.Application) -> None:
    """Mount the trust service (after the database context, before wallets: their policy reads scores)."""
    app.cleanup_ctx.append(_ctx)
