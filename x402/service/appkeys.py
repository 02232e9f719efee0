"""Typed keys for everything stored on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    from chains.registry import ChainRegistry
    from risk.engine import RiskEngine
    from x402.cache import Cache
    from x402.service.metrics import Metrics
    from x402.service.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[asyncpg.Pool] = web.AppKey("db")
CACHE: web.AppKey[Cache] = web.AppKey("cache")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
CHAINS: web.AppKey[ChainRegistry] = web.AppKey("chains")
EXTRAS: web.AppKey[dict[str, Any]] = web.AppKey("extras")
RISK: web.AppKey[RiskEngine] = web.AppKey("risk_engine")
