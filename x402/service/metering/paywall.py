"""``AppCredits``: the service's own credit ledger as a paywall's ``CreditLedger`` (in process, like
``AppFacilitator``). Every call runs in the provider tenant's row-level-security scope."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from x402.paywall.credits import Charge, CreditPrice
from x402.service.appkeys import DB, SETTINGS
from x402.service.metering import ledger, plans
from x402.service.metering.ingest import BatchResult, UsageEvent
from x402.service.metering.land import land
from x402.service.metering.topup import TOPUP_PATH
from x402.service.storage.scope import tenant_scope


class AppCredits:
    """Burns (held until captured), captures, refunds and usage events of ``tenant_id``'s customers on ``app``'s
    database (looked up per call: the pool is built in a cleanup context). ``actor`` names the paywall in the audit
    log."""

    def __init__(self, app: web.Application, *, tenant_id: uuid.UUID | None = None, actor: str = "paywall") -> None:
        self.app = app
        self.tenant_id = tenant_id
        self.actor = actor

    async def charge(self, customer: str, key: str, price: CreditPrice) -> Charge:
        """Burn the price once per key (``InsufficientCredits`` when not covered)."""
        plans.check_customer(customer)
        with tenant_scope(self.tenant_id):
            async with self.app[DB].acquire() as conn:
                out, new = await ledger.charge(
                    conn,
                    self.tenant_id,
                    customer,
                    key,
                    credits=price.credits,
                    meter=price.meter,
                    units=price.units if price.meter is not None else None,
                    actor=self.actor,
                )
        return Charge(customer, key, str(out["reference"]), -int(out["credits"]), int(out["balance"]), new)

    async def refund(self, customer: str, key: str) -> int:
        """Give the key's standing burn back; the balance after."""
        with tenant_scope(self.tenant_id):
            async with self.app[DB].acquire() as conn:
                out, _ = await ledger.refund_charge(conn, self.tenant_id, customer, key, actor=self.actor)
        return int(out["balance"])

    async def capture(self, customer: str, key: str) -> str:
        """The handler answered: the key's held charge is final; its state after (``refunded``: too late)."""
        with tenant_scope(self.tenant_id):
            async with self.app[DB].acquire() as conn:
                out = await ledger.capture_charge(conn, self.tenant_id, customer, key)
        return str(out["state"])

    async def record_usage(self, customer: str, meter: str, units: int, event_id: str) -> None:
        """One usage event, landed as ``POST /v1/events`` lands it (warnings, cache invalidation)."""
        event = UsageEvent(event_id, customer, meter, units, datetime.now(UTC), {})
        with tenant_scope(self.tenant_id):
            await land(self.app, self.tenant_id, [event], BatchResult())

    def topup_url(self, customer: str, request: web.Request) -> str | None:
        """This service's top-up route, when a credit pack is configured."""
        if not self.app[SETTINGS].credit_pack:
            return None
        query = "" if self.tenant_id is None else f"?tenant={self.tenant_id}"
        return f"{request.scheme}://{request.host}{TOPUP_PATH.format(customer=customer)}{query}"
