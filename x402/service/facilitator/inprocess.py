"""``AppFacilitator``: the service app's own in-process facilitator as a ``Facilitator`` for a ``Paywall``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.wire.models import SettleResponse, SupportedResponse, VerifyResponse

if TYPE_CHECKING:
    from x402.service.facilitator.service import FacilitatorService


class AppFacilitator:
    """Forwards to ``app[FACILITATOR]``, looked up per call because it is built in a cleanup context."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def _service(self) -> FacilitatorService:
        # imported late: the facilitator routes pull in the database and chain layers
        from x402.service.appkeys import FACILITATOR

        return self.app[FACILITATOR]

    async def _record(self, kind: str, payload: AnyPayload, requirements: AnyRequirements, result: object) -> None:
        """Record the outcome (and its events) before the paywall acts on it, like the HTTP routes do."""
        from x402.service.appkeys import OUTCOME

        hook = self.app.get(OUTCOME)
        if hook is not None:
            await hook(None, kind, requirements, result, payload=payload)

    async def verify(self, payload: AnyPayload, requirements: AnyRequirements) -> VerifyResponse:
        """Verify in process; recorded before it is returned."""
        result = await self._service().verify(payload, requirements)
        await self._record("verify", payload, requirements, result)
        return result

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        """Settle in process; recorded before it is returned."""
        result = await self._service().settle(payload, requirements)
        await self._record("settle", payload, requirements, result)
        return result

    async def supported(self) -> SupportedResponse:
        """What the in-process facilitator supports."""
        return await self._service().supported()
