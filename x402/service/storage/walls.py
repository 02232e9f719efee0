"""The service's pool behind row-level security: the non-bypassing role, the scope hook, the start-up check."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.errors import ConfigError, DatabaseUnavailable
from x402.logs import get_logger
from x402.service.storage.db import UNWALLED, connect, plain_numeric
from x402.service.storage.scope import ScopedConnection, apply_scope

log = get_logger("x402.walls")

#: Created by migration 0013; NOLOGIN and without BYPASSRLS, so RLS holds for every query the service makes.
APP_ROLE = "x402_app"

#: Under RLS, Postgres's automatic choice kept re-planning prepared statements (custom plans: each carries the
#: policies' sub-selects), about 60 us per query on the payments list; one generic plan per statement, as the
#: planner picks for the same statements without RLS, removes that (bench/rls.py).
GENERIC_PLANS = True
_BYPASSES = "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"


async def check_walls(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Refuse to run unless every tenant table is walled and this connection's role is held to the walls."""
    unwalled = [r[0] for r in await conn.fetch(UNWALLED)]
    if unwalled:
        raise ConfigError(
            f"row-level security is off on tenant table(s) {', '.join(unwalled)}: "
            "run `x402 migrate` (it re-applies x402_tenant_walls()) before starting the service"
        )
    if await conn.fetchval(_BYPASSES):
        user = await conn.fetchval("SELECT current_user")
        raise ConfigError(f"the database role {user!r} bypasses row-level security; the service cannot run as it")


async def _role_for(url: str) -> str | None:
    """APP_ROLE when the URL's role would bypass RLS (superuser or BYPASSRLS), else None (use it as it is)."""
    conn = await connect(url)
    try:
        if not await conn.fetchval(_BYPASSES):
            return None
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE) is None:
            raise ConfigError(
                f"the database role bypasses row-level security and the role {APP_ROLE!r} is missing: "
                "run `x402 migrate` as a role that may create roles, or connect as a plain role"
            )
        return APP_ROLE
    finally:
        await conn.close()


async def create_walled_pool(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """The service pool: every connection runs as a role held to RLS, and every checkout carries the scope."""
    role = await _role_for(url)

    async def init(conn: asyncpg.Connection) -> None:
        await plain_numeric(conn)
        if role is not None:
            try:
                await conn.execute(f'SET ROLE "{role}"')
            except asyncpg.InsufficientPrivilegeError as exc:
                raise ConfigError(f"cannot SET ROLE {role}: grant it to the connecting role ({exc})") from None

    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            command_timeout=30,
            init=init,
            setup=apply_scope,
            connection_class=ScopedConnection,
            # a startup parameter survives the release reset; see GENERIC_PLANS
            server_settings={"plan_cache_mode": "force_generic_plan"} if GENERIC_PLANS else None,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to Postgres: {type(exc).__name__}") from exc
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await check_walls(conn)
    except BaseException:
        await pool.close()
        raise
    log.info("tenant_walls_on", role=role or "connecting role")
    return pool
