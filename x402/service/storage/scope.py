"""Row-level security scope: which tenant's rows the running task may see, applied to every pooled connection.

The second wall between tenants (the first is every query's own ``tenant_id`` filter). The platform middleware
puts each request in its caller's tenant scope; work that legitimately spans tenants (background jobs, credential
lookup, public discovery, the operator) enters ``system_scope`` with a reason, so every such place is greppable.
The pool's ``setup`` hook (``apply_scope``) makes every checkout of a connection carry the scope of the task that
checked it out, in the Postgres settings ``app.tenant_id`` / ``app.system`` that the ``tenant_*`` policies
(migration 0013) read. The scope is fixed for the whole checkout (a transaction runs inside one checkout).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import asyncpg

from x402.logs import get_logger

log = get_logger("x402.scope")


@dataclass(frozen=True, slots=True)
class Scope:
    """A tenant id ('' = anonymous: only rows of no tenant), or the cross-tenant system scope with its reason."""

    tenant: str = ""
    system: bool = False
    reason: str = ""


ANONYMOUS = Scope()
_SCOPE: ContextVar[Scope] = ContextVar("x402_db_scope", default=ANONYMOUS)


def current_scope() -> Scope:
    """The scope of the running task."""
    return _SCOPE.get()


@contextmanager
def _entered(scope: Scope) -> Iterator[Scope]:
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def tenant_scope(tenant_id: uuid.UUID | str | None) -> Any:
    """Queries in this block see only rows of ``tenant_id`` (and rows of no tenant); None = anonymous."""
    if tenant_id is None:
        return _entered(ANONYMOUS)
    return _entered(Scope(tenant=str(uuid.UUID(str(tenant_id)))))


def system_scope(reason: str) -> Any:
    """Queries in this block (and tasks created in it) span every tenant; ``reason`` says why, for readers and logs."""
    if not reason:
        raise ValueError("a system scope needs a reason")
    return _entered(Scope(system=True, reason=reason))


def _settings_sql(tenant: str, system: bool) -> str:
    # literals, not parameters, so it can ride in the reset query: tenant is a canonical UUID (tenant_scope parses
    # every id through uuid.UUID) or empty, and system is one fixed word
    on = "on" if system else ""
    return f"SELECT set_config('app.tenant_id', '{tenant}', false), set_config('app.system', '{on}', false)"


class ScopedConnection(asyncpg.Connection):
    """A pooled connection that knows which scope its session settings carry, so a checkout in the same scope
    costs no round trip: the pool's release reset (``RESET ALL``) writes that scope back in the same message."""

    __slots__ = ("_x402_wall",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._x402_wall: tuple[str, bool] | None = ("", False)

    async def x402_enter(self, scope: Scope) -> None:
        """Make the session settings say ``scope`` (one round trip when they say something else)."""
        want = (scope.tenant, scope.system)
        if want == self._x402_wall:
            return
        self._x402_wall = None  # unknown until the statement is known to have run (cancellation, broken link)
        await self.execute(_settings_sql(*want))
        self._x402_wall = want

    def get_reset_query(self) -> str:
        """The default reset (rollback, unlock, ``RESET ALL``, ...), then this connection's scope written back."""
        wall = self._x402_wall or ("", False)
        self._x402_wall = wall
        return f"{super().get_reset_query()}\n{_settings_sql(*wall)};"


async def apply_scope(conn: Any) -> None:
    """Pool ``setup`` hook: the connection just checked out carries the running task's scope."""
    scope = _SCOPE.get()
    enter = getattr(conn, "x402_enter", None)
    if enter is not None:
        await enter(scope)
    elif scope.system or scope.tenant:  # a plain connection: RESET ALL on release left both settings empty
        await conn.execute(_settings_sql(scope.tenant, scope.system))
