"""A provider's own listing: ``/.well-known/x402`` for its paid routes, and registration with a remote registry.

* ``well_known_document``: the x402scan document (architecture.md §7.3) of the paywall's static paid routes
  (``"METHOD url"`` entries, a method always given) with the provider's ownership proofs (its payTo keys signing
  the origin, ``https://shop.example``).
* ``RemoteRegistry``: ``POST {registry}/v1/resources`` per static paid route at start-up (idempotent per
  URL and method on the registry side), so a paywall that uses a ``RemoteFacilitator`` is listed too. A registry
  that is down or refuses a route is logged; it never stops the provider's app from starting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import msgspec

from x402.logs import get_logger

if TYPE_CHECKING:
    from x402.paywall.middleware import Paywall

log = get_logger("x402.paywall")
REGISTER_TIMEOUT: Final = 10.0


def listed_routes(paywall: Paywall, base: str) -> list[tuple[str, dict[str, Any]]]:
    """``(method, POST /v1/resources body)`` of every static paid route at ``base`` (parameterised ones skipped)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for (method, path), route in paywall.paid_routes:
        if "{" in path:  # parameterised routes are declared through the bazaar routeTemplate instead
            continue
        challenge = paywall.challenges.get(route, base.rstrip("/") + path)
        resource = msgspec.to_builtins(challenge.resource)
        body: dict[str, Any] = {
            "url": challenge.resource.url,
            "method": "GET" if method == "*" else method,
            "x402Version": 2,
            "accepts": [msgspec.to_builtins(r) for r in challenge.requirements],
        }
        for key in ("description", "mimeType", "serviceName", "tags", "iconUrl"):
            if resource.get(key):
                body[key] = resource[key]
        if challenge.extensions:
            body["extensions"] = challenge.extensions
        out.append((body["method"], body))
    return out


def well_known_document(paywall: Paywall, base: str) -> dict[str, Any]:
    """The ``/.well-known/x402`` document of ``paywall``'s routes served at ``base``."""
    return {
        "version": 1,
        "resources": [f"{method} {body['url']}" for method, body in listed_routes(paywall, base)],
        "ownershipProofs": list(paywall.ownership_proofs),
    }


class RemoteRegistry:
    """Lists a paywall's routes in a remote x402 registry (this service's ``POST /v1/resources``)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = REGISTER_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def register(self, paywall: Paywall, base: str) -> list[str]:
        """Register every static paid route; the URLs the registry took (failures are logged, never raised)."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        listed: list[str] = []
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            for _method, body in listed_routes(paywall, base):
                try:
                    async with session.post(f"{self.url}/v1/resources", json=body, headers=headers) as resp:
                        if resp.status in (200, 201):
                            listed.append(body["url"])
                            continue
                        detail = (await resp.text())[:300]
                        log.warning("paywall_registry_refused", url=body["url"], status=resp.status, detail=detail)
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    log.warning("paywall_registry_unreachable", registry=self.url, error=type(exc).__name__)
                    break
        log.info("paywall_registry_listed", registry=self.url, count=len(listed))
        return listed


__all__: Sequence[str] = ["RemoteRegistry", "listed_routes", "well_known_document"]
