"""What this service publishes about its own paid resources: ``/.well-known/x402`` entries, OpenAPI x-payment-info."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web
from yarl import URL

from x402.service.appkeys import OPTIONS, REGISTRY, SETTINGS
from x402.service.registry.models import Resource
from x402.service.settings import Settings

DEFAULT_DECIMALS = 6  # USDC/EURC and most x402 stablecoins


async def _local(app: web.Application) -> list[Resource]:
    if REGISTRY not in app:
        return []
    return await app[REGISTRY].local_resources()


async def well_known_resources(app: web.Application) -> list[str]:
    """x402scan entries (``"METHOD url"``; a method is always given, since readers disagree on the default)."""
    out = list(app[OPTIONS].paid_resources)
    for r in await _local(app):
        entry = f"{r.method} {r.url}"
        if entry not in out and r.type == "http":
            out.append(entry)
    return out


def _usd(amount: int, asset: str, settings: Settings) -> str:
    decimals = DEFAULT_DECIMALS
    for net in settings.networks:
        for a in net.assets:
            if a.address.lower() == asset.lower():
                decimals = a.decimals
    value = Decimal(amount).scaleb(-decimals).normalize()
    return format(value, "f")


def payment_info(resource: Resource, settings: Settings) -> dict[str, Any]:
    """The OpenAPI ``x-payment-info`` of one resource: fixed price of its cheapest accept, x402 protocol."""
    amount_key = "amount" if resource.x402_version == 2 else "maxAmountRequired"
    cheapest = min(resource.accepts, key=lambda a: int(a.get(amount_key, "0") or 0))
    amount = int(cheapest.get(amount_key, "0") or 0)
    return {
        "price": {"mode": "fixed", "currency": "USD", "amount": _usd(amount, str(cheapest.get("asset", "")), settings)},
        "protocols": [{"x402": {}}],
    }


async def openapi_payment_info(app: web.Application) -> dict[tuple[str, str], dict[str, Any]]:
    """``x-payment-info`` per (lower-case method, path) for this service's paid operations (for /openapi.json)."""
    settings = app[SETTINGS]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in await _local(app):
        if r.type == "http" and r.accepts:
            out[(r.method.lower(), URL(r.url).path)] = payment_info(r, settings)
    return out
