"""Who is calling: an API key (``Authorization: Bearer x402_...`` or ``X-API-Key``) or the bootstrap admin token."""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from x402.errors import Forbidden, Unauthorized
from x402.service.platform import keys
from x402.service.storage.scope import system_scope, tenant_scope

#: How long a key looked up in Postgres is trusted in this process (a revocation or suspension elsewhere applies
#: within it).
KEY_CACHE_TTL = 5.0
#: last_used_at is written at most this often per key and process, so the hot path does not write per request.
LAST_USED_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. The operator (bootstrap token) has no tenant and may do everything."""

    tenant_id: uuid.UUID | None
    key_id: uuid.UUID | None
    scopes: frozenset[str]
    tier: str = "free"
    mode: str = "live"
    operator: bool = False
    agent: bool = False  # an agent key: pays from and reads its bound wallet(s), nothing else

    @property
    def actor(self) -> str:
        """Name for the audit log."""
        return "operator" if self.operator else f"key:{self.key_id}"

    def require(self, scope: str) -> None:
        """Raise Forbidden unless the caller holds ``scope``."""
        if not self.operator and scope not in self.scopes:
            raise Forbidden(f"this API key lacks the {scope!r} scope", code="insufficient_scope")


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("x402_principal")


@dataclass(slots=True)
class _Cached:
    hash: bytes
    principal: Principal
    revoked_at: float | None
    until: float
    suspended: bool = False


def presented_credential(request: web.Request) -> str | None:
    """The credential in the request, if any."""
    auth = request.headers.get("Authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use Authorization: Bearer <api key>", code="invalid_credentials")
        return token.strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


class Authenticator:
    """Resolves credentials to principals; keys are read from Postgres and cached briefly in-process."""

    def __init__(self, pool: asyncpg.Pool, admin_token: str | None, *, allow_test_keys: bool = False) -> None:
        self.pool = pool
        self.admin_token = admin_token
        # test-mode keys (e.g. the key `x402 serve --dev` prints and publishes) work only on a dev-mode server
        self.allow_test_keys = allow_test_keys
        self._cache: dict[str, _Cached] = {}
        self._last_used: dict[uuid.UUID, float] = {}

    def forget(self, prefix: str | None = None) -> None:
        """Drop cached keys (all, or one prefix) after a local revoke or rotate."""
        if prefix is None:
            self._cache.clear()
        else:
            self._cache.pop(prefix, None)

    async def authenticate(self, credential: str) -> Principal:
        """The principal for a credential; Unauthorized when it is not valid."""
        parsed = keys.parse(credential)
        if parsed is None:
            if self.admin_token and hmac.compare_digest(credential.encode(), self.admin_token.encode()):
                return Principal(None, None, frozenset(keys.SCOPES), tier="enterprise", operator=True)
            raise Unauthorized("invalid API key", code="invalid_api_key")
        now = time.time()
        entry = self._cache.get(parsed.prefix)
        if entry is None or entry.until <= time.monotonic():
            entry = await self._load(parsed.prefix)
            if entry is None:
                # hash anyway so an unknown prefix costs the same as a wrong secret
                keys.matches(parsed, b"\x00" * 32)
                raise Unauthorized("invalid API key", code="invalid_api_key")
            self._cache[parsed.prefix] = entry
        if not keys.matches(parsed, entry.hash) or entry.principal.mode != parsed.mode:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        return await self._admit(entry, now)

    async def for_session(self, prefix: str) -> Principal:
        """The principal of the key a dashboard session was opened with, under the same checks as the key itself.

        The session stores which key it came from, never the key; revoking the key or suspending the tenant ends
        the session at once (within ``KEY_CACHE_TTL`` on other processes), exactly as it stops the key.
        """
        entry = self._cache.get(prefix)
        if entry is None or entry.until <= time.monotonic():
            entry = await self._load(prefix)
            if entry is None:
                raise Unauthorized("the session's API key no longer exists", code="session_invalid")
            self._cache[prefix] = entry
        return await self._admit(entry, time.time())

    async def _admit(self, entry: _Cached, now: float) -> Principal:
        if entry.principal.mode == "test" and not self.allow_test_keys:
            raise Unauthorized("test-mode keys work only on a server in dev mode", code="test_key_not_allowed")
        if entry.revoked_at is not None and entry.revoked_at <= now:
            raise Unauthorized("this API key was revoked", code="api_key_revoked")
        if entry.suspended:
            # only a caller holding a valid key learns that its tenant is suspended
            raise Forbidden("this tenant is suspended", code="tenant_suspended")
        await self._touch(entry.principal, now)
        return entry.principal

    async def _load(self, prefix: str) -> _Cached | None:
        with system_scope("credential lookup: the key's tenant is not known until its row is read"):
            row = await self.pool.fetchrow(
                """SELECT k.id, k.tenant_id, k.hash, k.scopes, k.mode, k.agent, k.revoked_at, t.tier, t.status
                   FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.prefix = $1""",
                prefix,
            )
        if row is None or row["status"] not in ("active", "suspended"):
            return None
        principal = Principal(
            row["tenant_id"], row["id"], frozenset(row["scopes"]), row["tier"], row["mode"], agent=row["agent"]
        )
        revoked = row["revoked_at"].timestamp() if row["revoked_at"] is not None else None
        suspended = row["status"] == "suspended"
        return _Cached(bytes(row["hash"]), principal, revoked, time.monotonic() + KEY_CACHE_TTL, suspended)

    async def _touch(self, principal: Principal, now: float) -> None:
        assert principal.key_id is not None
        last = self._last_used.get(principal.key_id, 0.0)
        if now - last < LAST_USED_EVERY:
            return
        self._last_used[principal.key_id] = now
        with tenant_scope(principal.tenant_id):
            await self.pool.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", principal.key_id)


def principal_of(request: web.Request) -> Principal | None:
    """The authenticated caller of this request, if any."""
    return request.get(PRINCIPAL)


def require_principal(request: web.Request) -> Principal:
    """The caller, or 401 when the request carries no credential."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")
    return principal


def require_tenant(request: web.Request) -> Principal:
    """A caller that belongs to a tenant (tenant-scoped endpoints); agent keys only reach their wallet."""
    principal = require_principal(request)
    if principal.tenant_id is None:
        raise Forbidden("this endpoint needs a tenant API key", code="tenant_key_required")
    if principal.agent:
        raise Forbidden("an agent key may only pay from and read its wallet", code="agent_key_not_allowed")
    return principal
