"""The webhook feature of one process: endpoints, dead letters and the dispatch + delivery worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from wallets.custody import Keyring, load_keyring
from x402.logs import get_logger
from x402.service.appkeys import DB, OPTIONS, SETTINGS, WEBHOOKS
from x402.service.events.deadletters import DeadLetters
from x402.service.events.delivery import DeliveryOptions, DeliveryWorker
from x402.service.events.endpoints import Endpoints
from x402.service.settings import Settings
from x402.service.storage.scope import system_scope

log = get_logger("x402.service.events")


class WebhookService:
    """Everything webhooks need, built once per app from settings."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, options: DeliveryOptions | None = None) -> None:
        self.keyring: Keyring | None = load_keyring(
            settings.master_key, str(settings.master_key_file) if settings.master_key_file else None
        )
        self.endpoints = Endpoints(pool, self.keyring, allow_private=settings.allow_private_outbound)
        self.dead_letters = DeadLetters(pool)
        self.worker: DeliveryWorker | None = (
            DeliveryWorker(pool, self.keyring, allow_private=settings.allow_private_outbound, options=options)
            if self.keyring is not None
            else None
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker (without a master key no endpoint can exist, so there is nothing to deliver)."""
        if self.worker is not None:
            self._task = asyncio.create_task(self.worker.run(), name="webhook-worker")

    async def close(self) -> None:
        """Stop the worker and close its HTTP session."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.worker is not None:
            await self.worker.close()


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    service = WebhookService(app[DB], app[SETTINGS], app[OPTIONS].webhook_options)
    app[WEBHOOKS] = service
    with system_scope("webhook dispatch and delivery: every tenant's events and endpoints"):
        service.start()
    yield
    await service.close()


def install(app: web.Application) -> None:
    """Mount the webhook API and worker (after the database context)."""
    from x402.service.events.routes import routes

    app.cleanup_ctx.append(_ctx)
    app.add_routes(routes)
