"""The web dashboard (``/dashboard``): server-rendered pages over the JSON API, signed in with a session."""

from __future__ import annotations

from aiohttp import web

from x402.service.dashboard import routes as dashboard_routes


def install(app: web.Application) -> None:
    """Mount the pages, sign-in and their static files (scripts, styles, the vendored chart library)."""
    app.add_routes(dashboard_routes.routes)
