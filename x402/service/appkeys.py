"""Typed keys for everything stored on the aiohttp application (every service ``web.AppKey`` lives here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    from chains.registry import ChainRegistry
    from risk.engine import RiskEngine
    from wallets.service import WalletOptions, WalletService
    from x402.cache import Cache
    from x402.paywall import Paywall
    from x402.service.events.delivery import DeliveryOptions
    from x402.service.events.service import WebhookService
    from x402.service.facilitator.reconciler import Reconciler
    from x402.service.facilitator.routes import Authorizer, OutcomeHook
    from x402.service.facilitator.service import ExtensionHandler, FacilitatorService
    from x402.service.metrics import Metrics
    from x402.service.platform.context import Platform
    from x402.service.registry.bazaar import BazaarCatalog
    from x402.service.registry.outbound import Outbound
    from x402.service.registry.store import RegistryStore
    from x402.service.settings import Settings


@dataclass(frozen=True, slots=True)
class AppOptions:
    """What a caller of ``create_app`` may add beyond the settings (set once, read by the feature modules)."""

    #: Wallet limits and timeouts (``None``: the defaults).
    wallet_options: WalletOptions | None = None
    #: Webhook retry schedule, auto-disable policy and worker pacing (``None``: the defaults).
    webhook_options: DeliveryOptions | None = None
    #: Extra ``"METHOD url"`` entries for ``/.well-known/x402`` (besides the registry's own paid routes).
    paid_resources: tuple[str, ...] = ()
    #: Ownership proofs listed in ``/.well-known/x402``.
    ownership_proofs: tuple[str, ...] = ()
    #: ``{path: {method: operation}}`` merged into the OpenAPI document (entries here win).
    openapi_paths: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
OPTIONS: web.AppKey[AppOptions] = web.AppKey("options")
DB: web.AppKey[asyncpg.Pool] = web.AppKey("db")
CACHE: web.AppKey[Cache] = web.AppKey("cache")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
CHAINS: web.AppKey[ChainRegistry] = web.AppKey("chains")
RISK: web.AppKey[RiskEngine] = web.AppKey("risk_engine")
#: Facilitator extensions listed in ``/supported`` (feature modules append at install time).
EXTENSIONS: web.AppKey[list[str]] = web.AppKey("extensions")
#: Handlers the facilitator runs for its extensions (the registry's bazaar catalog).
EXTENSION_HANDLERS: web.AppKey[list[ExtensionHandler]] = web.AppKey("extension_handlers")
#: What ``/.well-known/x402`` shows about a ``--dev`` chain (the dev paywall adds its demo route).
DEV_INFO: web.AppKey[dict[str, Any]] = web.AppKey("dev_info")

FACILITATOR: web.AppKey[FacilitatorService] = web.AppKey("facilitator")
AUTHORIZER: web.AppKey[Authorizer] = web.AppKey("facilitator_authorizer")
OUTCOME: web.AppKey[OutcomeHook] = web.AppKey("facilitator_outcome")
RECONCILER: web.AppKey[Reconciler] = web.AppKey("reconciler")
PLATFORM: web.AppKey[Platform] = web.AppKey("platform")
REGISTRY: web.AppKey[RegistryStore] = web.AppKey("registry_store")
OUTBOUND: web.AppKey[Outbound] = web.AppKey("registry_outbound")
BAZAAR: web.AppKey[BazaarCatalog] = web.AppKey("registry_bazaar")
WALLETS: web.AppKey[WalletService] = web.AppKey("wallets")
WEBHOOKS: web.AppKey[WebhookService] = web.AppKey("webhooks")
DEMO_PAYWALL: web.AppKey[Paywall] = web.AppKey("demo_paywall")
