"""Who may touch which wallet: tenant API keys with the ``wallets`` scope, agent keys bound to one wallet."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiohttp import web

from wallets.audit import WalletAudit
from wallets.events import Conn
from wallets.service import WalletService
from wallets.store import Wallet
from x402.errors import NotFound, Unauthorized
from x402.service.appkeys import SETTINGS
from x402.service.middleware import REQUEST_ID
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry
from x402.service.platform.auth import principal_of


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller of a wallet endpoint; ``agent_wallets`` set means an agent key limited to those wallets."""

    tenant_id: uuid.UUID | None
    actor: str
    operator: bool
    agent_wallets: frozenset[uuid.UUID] | None = None
    request_id: str | None = None

    def require_manager(self) -> None:
        """Refuse agent keys (they may pay and read, not change policy, pause state or approvals)."""
        if self.agent_wallets is not None:
            from wallets.errors import WalletForbidden

            raise WalletForbidden("an agent key may only pay from and read its wallet")


async def caller_of(request: web.Request, service: WalletService) -> Caller:
    """The authenticated caller (API keys off: anonymous, wallets without a tenant)."""
    rid = request.get(REQUEST_ID)
    principal = principal_of(request)
    if principal is None:
        if request.app[SETTINGS].require_api_keys:
            raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")
        return Caller(None, "anonymous", operator=False, request_id=rid)
    principal.require("wallets")
    agent: frozenset[uuid.UUID] | None = None
    if principal.agent and principal.key_id is not None:
        # marked on the key: a key whose bindings are gone is limited to no wallet, never promoted to a tenant key
        agent = await service.store.agent_wallets(principal.key_id) or frozenset()
    return Caller(principal.tenant_id, principal.actor, principal.operator, agent, rid)


def wallet_id_of(request: web.Request, name: str = "id") -> uuid.UUID:
    """A path id; malformed ids are simply not found."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound("no such wallet", code="wallet_not_found") from None


async def wallet_for(request: web.Request, service: WalletService, caller: Caller) -> Wallet:
    """The wallet in the path, if this caller may see it (others' wallets are not found)."""
    return await wallet_by_id(service, caller, wallet_id_of(request))


async def wallet_by_id(service: WalletService, caller: Caller, wallet_id: uuid.UUID) -> Wallet:
    """A wallet by id, if this caller may see it (others' wallets are not found)."""
    if caller.agent_wallets is not None and wallet_id not in caller.agent_wallets:
        raise NotFound("no such wallet", code="wallet_not_found")
    return await service.store.get(wallet_id, caller.tenant_id, any_tenant=caller.operator)


async def platform_audit(conn: Conn, record: WalletAudit) -> None:
    """The AuditSink writing wallet changes to the platform's hash-chained audit log."""
    await audit.append(
        conn,
        AuditEntry(
            record.actor, record.action, "wallet", record.wallet_id, record.before, record.after, record.request_id
        ),
    )
