"""Row-level security scope: which tenant's rows the running task may see, applied to every pooled connection.

The second wall between tenants (the first is every query's own ``tenant_id`` filter). The platform middleware
puts each request in its caller's tenant scope; work that legitimately spans tenants (background jobs, credential
lookup, public discovery, the operator) enters ``system_scope`` with a reason, so every such place is greppable.
The pool's ``setup`` hook (``apply_scope``) writes the scope into the Postgres settings ``app.tenant_id`` /
``app.system`` that the ``tenant_wall`` policies (migration 0013) read; asyncpg's release reset (``RESET ALL``)
clears them, so a setting never outlives one checkout of a connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

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


async def apply_scope(conn: Any) -> None:
    """Pool ``setup`` hook: write the running task's scope into the connection just checked out."""
    scope = _SCOPE.get()
    if scope.system:
        await conn.execute("SELECT set_config('app.system', 'on', false)")
    elif scope.tenant:
        await conn.execute("SELECT set_config('app.tenant_id', $1, false)", scope.tenant)
    # anonymous: nothing to write; the release reset (RESET ALL) left both settings empty
