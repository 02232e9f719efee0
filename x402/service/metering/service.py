"""The metering feature of one process: its routes."""

from __future__ import annotations

from aiohttp import web


def install(app: web.Application) -> None:
    """Mount the metering API (after the database context)."""
    from x402.service.metering.routes import routes

    app.add_routes(routes)
