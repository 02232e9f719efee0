"""The dashboard's HTML routes: sign-in / sign-out and the page shells (data comes from the JSON API).

No page handler reads tenant data or acts on it: the pages' script calls the same ``/v1`` routes as any API
client, with the session cookie as the credential (``x402.service.platform.sessions``), so the API's own scope and
tenant checks are the only ones. These routes only open, show and close sessions.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import jinja2
from aiohttp import web

from x402.errors import X402Error
from x402.service.appkeys import DEV_INFO, PLATFORM, SETTINGS
from x402.service.platform.sessions import COOKIE, CSRF_FIELD, SESSION, Session

HERE = Path(__file__).parent
PREFIX = "/dashboard"
#: Double-submit cookie guarding the sign-in forms (there is no session yet to hold a CSRF secret).
LOGIN_CSRF_COOKIE = "x402_login_csrf"
#: (slug, title) of every page, in navigation order.
PAGES = (
    ("overview", "Overview"),
    ("payments", "Payments"),
    ("resources", "Resources"),
    ("wallets", "Wallets"),
    ("keys", "API keys"),
    ("webhooks", "Webhooks"),
    ("risk", "Risk"),
    ("usage", "Usage & quota"),
)
_TITLES = dict(PAGES)
#: Pages load only their own scripts and styles; nothing inline, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_TYPES = {".js": "text/javascript", ".css": "text/css", ".LICENSE": "text/plain"}


def _read_all(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# read once at import (app.py imports this module eagerly, outside the event loop): no file I/O per request
_TEMPLATES = {name: body.decode() for name, body in _read_all(HERE / "templates").items()}
STATIC = _read_all(HERE / "static")
_env = jinja2.Environment(loader=jinja2.DictLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
routes = web.RouteTableDef()


@routes.get(PREFIX + "/static/{path:.+}")
async def static(request: web.Request) -> web.Response:
    """The pages' scripts and styles and the vendored chart library (served from memory)."""
    path = request.match_info["path"]
    body = STATIC.get(path)
    suffix = next((s for s in _TYPES if path.endswith(s)), None)
    if body is None or suffix is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=body,
        content_type=_TYPES[suffix],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _secure(request: web.Request) -> bool:
    public = request.app[SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def _page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    settings = request.app[SETTINGS]
    body = _env.get_template(template).render(
        prefix=PREFIX, pages=PAGES, dev=bool(settings.dev and request.app[DEV_INFO].get("apiKey")), **context
    )
    return web.Response(text=body, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def _session(request: web.Request) -> Session | None:
    return request.get(SESSION)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS})


def _to_login(request: web.Request) -> NoReturn:
    target = quote(request.path_qs, safe="")
    raise web.HTTPSeeOther(f"{PREFIX}/login?next={target}")


def _next(raw: str | None) -> str:
    """Only a dashboard path may follow sign-in (no open redirect)."""
    if raw and raw.startswith(PREFIX + "/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return f"{PREFIX}/overview"


def _login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    resp = _page(
        request, "login.html", status, csrf=token, error=error, next=_next(request.query.get("next")), title="Sign in"
    )
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=_secure(request), path=PREFIX)
    return resp


async def _login_form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    presented = values.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise _Refused("the sign-in form expired; try again", 403)
    return values


class _Refused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def _signed_in(request: web.Request, key: str, target: str) -> web.Response:
    platform = request.app[PLATFORM]
    principal = await platform.auth.authenticate(key)
    token, _ = await platform.sessions.open(principal)
    resp = _see_other(target)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=_secure(request), path="/")
    resp.del_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return resp


@routes.get(PREFIX)
async def root(request: web.Request) -> web.Response:
    """The dashboard's entry: the overview, or sign-in."""
    raise web.HTTPSeeOther(f"{PREFIX}/overview" if _session(request) else f"{PREFIX}/login")


@routes.get(PREFIX + "/login")
async def login_page(request: web.Request) -> web.Response:
    """The sign-in form (API key), and in ``x402 serve --dev`` the one-click dev sign-in."""
    if _session(request) is not None:
        raise web.HTTPSeeOther(_next(request.query.get("next")))
    return _login_page(request)


@routes.post(PREFIX + "/login")
async def login(request: web.Request) -> web.Response:
    """Exchange an API key for a session (the key itself is never stored in the browser)."""
    try:
        form = await _login_form(request)
        return await _signed_in(request, form.get("key", "").strip(), _next(form.get("next")))
    except _Refused as exc:
        return _login_page(request, str(exc), exc.status)
    except X402Error as exc:
        return _login_page(request, exc.detail, exc.status)


@routes.post(PREFIX + "/dev-login")
async def dev_login(request: web.Request) -> web.Response:
    """``x402 serve --dev`` only: sign in as the dev tenant with the key the server printed."""
    key = request.app[DEV_INFO].get("apiKey") if request.app[SETTINGS].dev else None
    if not key:
        raise web.HTTPNotFound()
    try:
        form = await _login_form(request)
        return await _signed_in(request, str(key), _next(form.get("next")))
    except _Refused as exc:
        return _login_page(request, str(exc), exc.status)


@routes.post(PREFIX + "/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session (CSRF-checked form) and clear the cookie."""
    session = _session(request)
    if session is not None:
        form = await request.post()
        presented = form.get(CSRF_FIELD)
        if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(), session.csrf.encode()):
            return _login_page(request, "sign-out needs the page's CSRF token; reload and try again", 403)
        assert session.principal.tenant_id is not None
        await request.app[PLATFORM].sessions.close(session.id, session.principal.tenant_id)
    resp = _see_other(f"{PREFIX}/login")
    resp.del_cookie(COOKIE, path="/")
    return resp


def _shell(request: web.Request, page: str, **context: Any) -> web.Response:
    session = _session(request)
    if session is None:
        _to_login(request)
    principal = session.principal
    return _page(
        request,
        f"{page}.html",
        page=page,
        title=_TITLES.get(page, "Payment"),
        csrf=session.csrf,
        tenant_id=str(principal.tenant_id),
        scopes=sorted(principal.scopes),
        mode=principal.mode,
        **context,
    )


@routes.get(PREFIX + "/payments/{id:[0-9a-fA-F-]{36}}")
async def payment_page(request: web.Request) -> web.Response:
    """One payment: the record, its on-chain transaction and the risk outcome."""
    return _shell(request, "payment", payment_id=request.match_info["id"])


@routes.get(PREFIX + "/{page:" + "|".join(slug for slug, _ in PAGES) + "}")
async def page(request: web.Request) -> web.Response:
    """A page shell; its script fills it from the JSON API."""
    return _shell(request, request.match_info["page"])
