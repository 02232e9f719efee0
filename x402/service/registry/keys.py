"""Typed app keys of the registry (set by ``x402.service.registry.install``'s cleanup context)."""

from __future__ import annotations

from aiohttp import web

from x402.service.registry.bazaar import BazaarCatalog
from x402.service.registry.outbound import Outbound
from x402.service.registry.store import RegistryStore

REGISTRY: web.AppKey[RegistryStore] = web.AppKey("registry_store")
OUTBOUND: web.AppKey[Outbound] = web.AppKey("registry_outbound")
BAZAAR: web.AppKey[BazaarCatalog] = web.AppKey("registry_bazaar")
