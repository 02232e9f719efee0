"""``RemoteCredits``: a paywall's ``CreditLedger`` over the service's HTTP API with the provider's API key (a
``verify`` key is enough), for a provider whose paywall reaches the service remotely, like ``RemoteFacilitator``.

``POST /v1/credits/{customer}/charges`` burns once per key (a hold), ``POST …/charges/{key}/capture`` makes it
final once the handler answered, ``POST …/charges/{key}/refund`` gives it back,
``POST /v1/events`` records the meter's usage. Transport errors, timeouts and 5xx are ``DependencyError``
(``credits_unavailable``, 503); 409 ``insufficient_credits`` is ``InsufficientCredits``; other refusals keep the
service's status and code.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import aiohttp
from aiohttp import web

from x402.errors import DependencyError, InsufficientCredits, X402Error
from x402.paywall.credits import Charge, CreditPrice
from x402.wire import jsonlimits

_MAX_BODY: Final = 64 * 1024


class CreditsRefused(X402Error):
    """The service refused a credit call (its status and code)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail, code=code)
        self.status = status


class RemoteCredits:
    """The credit ledger of the x402 service at ``url``, called with ``api_key`` (the provider's tenant).
    ``tenant_id`` (the provider's tenant id) completes the top-up link for payers without a key."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        tenant_id: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant_id = tenant_id
        self._session = session
        self._own = session is None
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def close(self) -> None:
        """Close the session if this object opened it."""
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url + path, json=body, headers=self._headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(_MAX_BODY + 1)
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DependencyError(
                f"the credit ledger failed: {type(exc).__name__}", dependency="credits", code="credits_unavailable"
            ) from None
        if status >= 500 or len(raw) > _MAX_BODY:
            raise DependencyError(
                f"the credit ledger answered HTTP {status}", dependency="credits", code="credits_unavailable"
            )
        try:
            doc: dict[str, Any] | None = jsonlimits.decode(raw, dict[str, Any]) if raw else {}
        except X402Error:
            doc = None
        if doc is None:
            raise DependencyError(
                f"the credit ledger answered an unreadable body (HTTP {status})",
                dependency="credits",
                code="credits_unavailable",
            )
        return status, doc

    @staticmethod
    def _refused(status: int, doc: dict[str, Any]) -> X402Error:
        code = str(doc.get("code") or "credits_refused")
        if status == 409 and code == "insufficient_credits":
            return InsufficientCredits(balance=int(doc.get("balance") or 0), needed=int(doc.get("needed") or 0))
        return CreditsRefused(status, code, str(doc.get("detail") or f"the credit ledger answered HTTP {status}"))

    def _base(self, customer: str) -> str:
        return f"/v1/credits/{quote(customer, safe='')}"

    async def charge(self, customer: str, key: str, price: CreditPrice) -> Charge:
        """``POST /v1/credits/{customer}/charges``."""
        body: dict[str, Any] = {"key": key}
        if price.meter is not None:
            body.update(meter=price.meter, units=price.units)
        else:
            body["credits"] = price.credits
        status, doc = await self._post(self._base(customer) + "/charges", body)
        if status not in (200, 201):
            raise self._refused(status, doc)
        return Charge(customer, key, str(doc["reference"]), -int(doc["credits"]), int(doc["balance"]), status == 201)

    async def refund(self, customer: str, key: str) -> int:
        """``POST /v1/credits/{customer}/charges/{key}/refund``; the balance after."""
        status, doc = await self._post(f"{self._base(customer)}/charges/{key}/refund", {})
        if status not in (200, 201):
            raise self._refused(status, doc)
        return int(doc["balance"])

    async def capture(self, customer: str, key: str) -> str:
        """``POST /v1/credits/{customer}/charges/{key}/capture``; the charge's state after (``refunded``: the
        service's hold pass gave it back first)."""
        status, doc = await self._post(f"{self._base(customer)}/charges/{key}/capture", {})
        if status == 409 and doc.get("code") == "charge_refunded":
            return "refunded"
        if status != 200:
            raise self._refused(status, doc)
        return str(doc["state"])

    async def record_usage(self, customer: str, meter: str, units: int, event_id: str) -> None:
        """``POST /v1/events`` with one event."""
        event = {"id": event_id, "customer": customer, "meter": meter, "value": units}
        status, doc = await self._post("/v1/events", {"events": [event]})
        if status != 200 or doc.get("errors"):
            raise CreditsRefused(status, "usage_refused", f"the usage event was refused: {doc}"[:300])

    def topup_url(self, customer: str, request: web.Request) -> str | None:
        """The service's top-up route for this customer."""
        query = f"?tenant={self.tenant_id}" if self.tenant_id else ""
        return f"{self.url}{self._base(customer)}/topup{query}"
