"""``AppFacilitator``: the service app's own in-process facilitator as a ``Facilitator`` for a ``Paywall``.

When the platform is installed, each verify / settle outcome becomes a payment record (resource, method, latency,
risk) of the paywall's owner tenant, as ``/verify`` and ``/settle`` record theirs.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.wire.models import SettleResponse, SupportedResponse, VerifyResponse

if TYPE_CHECKING:
    from x402.service.facilitator.service import FacilitatorService


class AppFacilitator:
    """Forwards to ``app[FACILITATOR]``, looked up per call because it is built in a cleanup context.

    ``tenant_id`` owns the records of this paywall's payments (None: no tenant); ``method`` is the HTTP method of
    its paid routes when they share one ('' = unknown, unless the payment's bazaar extension names it).
    """

    def __init__(self, app: web.Application, *, tenant_id: uuid.UUID | None = None, method: str = "") -> None:
        self.app = app
        self.tenant_id = tenant_id
        self.method = method

    def _service(self) -> FacilitatorService:
        # imported late: the facilitator routes pull in the database and chain layers
        from x402.service.appkeys import FACILITATOR

        return self.app[FACILITATOR]

    async def _record(
        self, kind: str, payload: AnyPayload, requirements: AnyRequirements, result: object, started: float
    ) -> None:
        """Record the outcome (and its events) before the paywall acts on it, like the HTTP routes do."""
        from x402.service.appkeys import OUTCOME
        from x402.service.outcome import Outcome, detail_of

        hook = self.app.get(OUTCOME)
        if hook is None:
            return
        detail = detail_of(payload, requirements, (time.perf_counter() - started) * 1000)
        if self.method and not detail.method:
            detail = type(detail)(detail.resource, self.method, detail.latency_ms)
        await hook(Outcome(kind, requirements, result, payload=payload, tenant_id=self.tenant_id, detail=detail))

    async def verify(self, payload: AnyPayload, requirements: AnyRequirements) -> VerifyResponse:
        """Verify in process; recorded before it is returned."""
        started = time.perf_counter()
        result = await self._service().verify(payload, requirements)
        await self._record("verify", payload, requirements, result, started)
        return result

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        """Settle in process; recorded before it is returned."""
        started = time.perf_counter()
        result = await self._service().settle(payload, requirements)
        await self._record("settle", payload, requirements, result, started)
        return result

    async def supported(self) -> SupportedResponse:
        """What the in-process facilitator supports."""
        return await self._service().supported()
