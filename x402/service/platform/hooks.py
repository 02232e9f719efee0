"""The platform's request middleware and the facilitator hooks (authorizer, outcome recorder)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from x402.errors import Forbidden, Unauthorized
from x402.service.appkeys import PLATFORM
from x402.service.outcome import Outcome, OutcomeDetail
from x402.service.platform.auth import PRINCIPAL, Principal, presented_credential, principal_of
from x402.service.platform.context import RESPONSE_HEADERS, response_headers
from x402.service.platform.idempotency import Handler, idempotent
from x402.service.platform.recorder import build_record, events_for, record_for, resource_of
from x402.service.platform.sessions import SESSION, check_csrf, session_cookie_token
from x402.service.storage.scope import system_scope, tenant_scope

#: Paths where a presented credential is checked; elsewhere (paywalled resources, public pages) it is not ours.
PROTECTED_PREFIXES = ("/verify", "/settle", "/v1/")
#: The dashboard's pages (HTML): a session cookie is resolved there, never an API key.
DASHBOARD_PREFIX = "/dashboard"
#: Never authenticated, whatever the prefix rules say.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/.well-known/x402", "/supported", "/docs", "/openapi.json"}
)


def is_protected(path: str) -> bool:
    """True when the platform authenticates credentials on this path."""
    if path in PUBLIC_PATHS or path.startswith("/discovery/"):
        return False
    return path in ("/verify", "/settle") or path.startswith("/v1/")


@web.middleware
async def platform_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the caller, apply Idempotency-Key to POSTs, add quota headers to the answer."""
    platform = request.app[PLATFORM]
    if is_protected(request.path):
        credential = presented_credential(request)
        if credential is not None:
            request[PRINCIPAL] = await platform.auth.authenticate(credential)
        elif (token := session_cookie_token(request)) is not None:
            # a dashboard session: exactly its key's principal, and its CSRF secret on unsafe methods
            session = await platform.sessions.resolve(token)
            check_csrf(request, session)
            request[SESSION] = session
            request[PRINCIPAL] = session.principal
    elif request.path.startswith(DASHBOARD_PREFIX) and (token := session_cookie_token(request)) is not None:
        # dashboard pages: no session (or a dead one) is the sign-in page, not an error; forms check CSRF themselves
        try:
            session = await platform.sessions.resolve(token)
        except (Unauthorized, Forbidden):
            pass
        else:
            request[SESSION] = session
            request[PRINCIPAL] = session.principal

    async def run(req: web.Request) -> web.StreamResponse:
        resp = await handler(req)
        extra = req.get(RESPONSE_HEADERS)
        if extra:
            resp.headers.update(extra)
        return resp

    principal = principal_of(request)
    with scope_of(principal):
        if request.method == "POST" and "Idempotency-Key" in request.headers:
            return await idempotent(platform.store.pool, principal.tenant_id if principal else None, request, run)
        return await run(request)


def scope_of(principal: Principal | None) -> Any:
    """The row-level security scope a request runs in: its tenant's, the operator's (system) or anonymous."""
    if principal is not None and principal.operator:
        return system_scope("operator token: the operator administers every tenant")
    return tenant_scope(principal.tenant_id if principal else None)


async def authorize(request: web.Request, scope: str) -> str | None:
    """Facilitator gate: key required (unless off), scope held, rate limit, then the monthly quota for verify."""
    platform = request.app[PLATFORM]
    principal = principal_of(request)
    if principal is None:
        if platform.settings.require_api_keys:
            raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")
        return None
    principal.require(scope)
    if principal.operator or principal.tenant_id is None:
        return None
    tier = platform.tier(principal.tier)
    # both checks run before the body is parsed, so a refused request costs no signature or RPC work
    await platform.limiter.hit(str(principal.tenant_id), tier)
    if scope == "verify":
        response_headers(request).update(await platform.quota.count(principal.tenant_id, tier))
    return str(principal.tenant_id)


def outcome_recorder(app: web.Application) -> Any:
    """The facilitator's outcome hook for ``app``: records each answer and its events before it goes out."""

    async def record_outcome(outcome: Outcome) -> None:
        """Write the record and its events (group commit); raises DatabaseUnavailable when it cannot be kept."""
        o = outcome
        if o.request is not None:
            record = record_for(o.request, o.kind, o.requirements, o.result)
        else:  # in process: the paywall's owner and the call's detail come with the outcome
            record = build_record(o.tenant_id, o.kind, o.requirements, o.result, o.detail or OutcomeDetail())
        if record is not None:
            resource = record.resource or resource_of(o.payload, o.requirements)
            await app[PLATFORM].writer.write(record, events_for(record, resource))

    return record_outcome
