"""An aiohttp test server on the runner ``x402 serve`` uses, so aiohttp's own refusals are problem+json too."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from x402.rejections import ServiceRunner


class ServiceTestServer(TestServer):
    """``TestServer`` with ``ServiceRunner``: pass it to ``aiohttp_client`` instead of the app."""

    async def _make_runner(self, **kwargs: Any) -> ServiceRunner:
        return ServiceRunner(self.app, **kwargs)
