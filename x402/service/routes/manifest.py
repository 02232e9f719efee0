"""``/.well-known/x402`` (x402scan format plus this service's manifest) and ``GET /supported``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from x402 import __version__
from x402.service.appkeys import CHAINS, DEV_INFO, EXTENSIONS, OPTIONS, SETTINGS
from x402.service.registry import manifest as registry_manifest
from x402.wire.models import SupportedResponse, encode_json

routes = web.RouteTableDef()


def supported(request: web.Request) -> SupportedResponse:
    """The kinds and signers of every configured adapter."""
    extensions: list[str] = request.app[EXTENSIONS]
    return request.app[CHAINS].supported(list(extensions))


@routes.get("/supported")
async def get_supported(request: web.Request) -> web.Response:
    """Facilitator ``/supported`` (architecture.md §6.2)."""
    return web.Response(body=encode_json(supported(request)), content_type="application/json")


def base_url(request: web.Request) -> str:
    """The public URL of this service (X402_PUBLIC_URL, else what the request says)."""
    configured = request.app[SETTINGS].public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.scheme}://{request.host}"


@routes.get("/.well-known/x402")
async def well_known(request: web.Request) -> web.Response:
    """x402scan-style discovery document with this service's manifest alongside."""
    settings = request.app[SETTINGS]
    base = base_url(request)
    sup = supported(request)
    body: dict[str, Any] = {
        "version": 1,
        "resources": await registry_manifest.well_known_resources(request.app),
        "ownershipProofs": list(request.app[OPTIONS].ownership_proofs),
        "instructions": (
            f"{settings.service_name} is an x402 facilitator: POST {base}/verify and {base}/settle with "
            "{x402Version, paymentPayload, paymentRequirements}; GET /supported lists what it settles."
        ),
        "service": {
            "name": settings.service_name,
            "version": __version__,
            "x402Versions": [1, 2],
            "endpoints": {
                "verify": f"{base}/verify",
                "settle": f"{base}/settle",
                "supported": f"{base}/supported",
                "discovery": f"{base}/discovery/resources",
                "verifyTransaction": f"{base}/v1/payments/verify-tx",
            },
            "kinds": list(encode_kinds(sup)),
            "signers": sup.signers,
        },
    }
    dev = request.app[DEV_INFO]
    if dev:
        body["dev"] = dev
    return web.Response(body=encode_json(body), content_type="application/json")


def encode_kinds(sup: SupportedResponse) -> list[Any]:
    """Kinds as plain JSON values."""
    import msgspec

    return list(msgspec.to_builtins(sup.kinds))
