"""Dashboard sessions: an API key exchanged for a server-side session, accepted by the platform middleware.

A session is a credential carrying exactly its key's tenant and scopes (the key is re-checked on every request, so
a revoked key or a suspended tenant ends its sessions). The cookie holds a random token; Postgres stores its
SHA-256, the key it came from and a CSRF secret. Unsafe methods under a session need ``X-CSRF-Token`` (fetch) or a
``csrf`` form field equal to that secret; sessions end after ``X402_DASHBOARD_IDLE_SECONDS`` without a request, at
their absolute lifetime, or at sign-out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from aiohttp import web

from x402.errors import Forbidden, Unauthorized
from x402.service.platform.auth import Authenticator, Principal
from x402.service.storage.scope import system_scope, tenant_scope

COOKIE = "x402_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: A session lasts at most this long, however active.
MAX_LIFETIME = timedelta(hours=12)
#: last_seen_at is written at most this often per session (idle expiry is coarse to this).
TOUCH_EVERY = timedelta(seconds=15)


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: who it is and the CSRF secret its pages carry."""

    id: uuid.UUID
    principal: Principal
    csrf: str


SESSION: web.RequestKey[Session] = web.RequestKey("x402_dashboard_session")


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class SessionStore:
    """Create, resolve and end dashboard sessions (rows in ``dashboard_sessions``)."""

    def __init__(self, pool: asyncpg.Pool, auth: Authenticator, idle: float) -> None:
        self.pool = pool
        self.auth = auth
        self.idle = timedelta(seconds=idle)

    async def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session for an authenticated tenant key; returns the cookie token (shown to the browser only)."""
        if principal.tenant_id is None or principal.key_id is None:
            raise Forbidden("the dashboard signs in with a tenant's API key", code="tenant_key_required")
        if principal.agent:
            raise Forbidden("an agent key cannot open a dashboard session", code="agent_key_not_allowed")
        token, csrf, sid = secrets.token_urlsafe(32), secrets.token_urlsafe(24), uuid.uuid4()
        with tenant_scope(principal.tenant_id):
            await self.pool.execute(
                """INSERT INTO dashboard_sessions (id, tenant_id, key_id, hash, csrf_secret, expires_at)
                   VALUES ($1, $2, $3, $4, $5, now() + $6::interval)""",
                sid,
                principal.tenant_id,
                principal.key_id,
                _hash(token),
                csrf,
                MAX_LIFETIME,
            )
        return token, Session(sid, principal, csrf)

    async def resolve(self, token: str) -> Session:
        """The live session for a cookie token; Unauthorized when unknown, idle too long or past its lifetime."""
        with system_scope("session lookup: the session's tenant is not known until its row is read"):
            row = await self.pool.fetchrow(
                """SELECT s.id, s.tenant_id, s.csrf_secret, s.last_seen_at, s.expires_at, k.prefix, now() AS now
                   FROM dashboard_sessions s JOIN api_keys k ON k.id = s.key_id WHERE s.hash = $1""",
                _hash(token),
            )
        if row is None:
            raise Unauthorized("the dashboard session is not valid; sign in again", code="session_invalid")
        now: datetime = row["now"]
        if row["expires_at"] <= now or row["last_seen_at"] + self.idle <= now:
            await self.close(row["id"], row["tenant_id"])
            raise Unauthorized("the dashboard session expired; sign in again", code="session_expired")
        principal = await self.auth.for_session(row["prefix"])
        if now - row["last_seen_at"] >= TOUCH_EVERY:
            with tenant_scope(row["tenant_id"]):
                await self.pool.execute("UPDATE dashboard_sessions SET last_seen_at = now() WHERE id = $1", row["id"])
        return Session(row["id"], principal, row["csrf_secret"])

    async def close(self, session_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        """End a session (sign-out, expiry)."""
        with tenant_scope(tenant_id):
            await self.pool.execute("DELETE FROM dashboard_sessions WHERE id = $1", session_id)

    async def purge_expired(self) -> int:
        """Delete sessions past their lifetime or idle limit (every tenant's)."""
        with system_scope("dashboard session purge: expired sessions of every tenant"):
            status = await self.pool.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at <= now() OR last_seen_at <= now() - $1::interval",
                self.idle,
            )
        return int(status.split()[-1])


def check_csrf(request: web.Request, session: Session, form_value: str | None = None) -> None:
    """Unsafe methods under a session must echo its CSRF secret (header for fetch, form field for forms)."""
    if request.method in SAFE_METHODS:
        return
    presented = form_value if form_value is not None else request.headers.get(CSRF_HEADER, "")
    if not presented or not hmac.compare_digest(presented.encode(), session.csrf.encode()):
        raise Forbidden("missing or wrong CSRF token for this dashboard session", code="csrf_failed")


def session_cookie_token(request: web.Request) -> str | None:
    """The session token in the request's cookie, if any."""
    token = request.cookies.get(COOKIE, "").strip()
    return token or None
