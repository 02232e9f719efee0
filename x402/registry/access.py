"""Who may write registry resources, and ownership checks.

* A platform API key (the principal the platform attached to the request) acts for its tenant: it needs the
  ``registry`` scope, its new resources get its ``tenant_id``, and it may change only resources of that tenant.
* The operator (platform principal with ``operator``, or ``Authorization: Bearer <X402_ADMIN_TOKEN>`` when the
  platform did not authenticate the request) may change everything.
* With ``require_api_keys`` off (apps built in code, dev), anonymous writes are allowed and act as the operator.
* Otherwise a write without credentials is 401 ``api_key_required``.
Resources with no tenant (crawled without a tenant key, catalogued from bazaar payments) are operator-only.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from aiohttp import web

from x402.appkeys import SETTINGS
from x402.errors import Forbidden, Unauthorized
from x402.platform.auth import principal_of


@dataclass(frozen=True, slots=True)
class Writer:
    """The caller of a registry write: a tenant, or the operator (``tenant_id`` None)."""

    tenant_id: uuid.UUID | None
    operator: bool


def writer(request: web.Request) -> Writer:
    """The caller allowed to write, or raise 401/403."""
    principal = principal_of(request)
    if principal is not None:
        if principal.operator:
            return Writer(None, True)
        principal.require("registry")
        return Writer(principal.tenant_id, False)
    settings = request.app[SETTINGS]
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if settings.admin_token and scheme.lower() == "bearer" and token:
        if hmac.compare_digest(token.encode(), settings.admin_token.encode()):
            return Writer(None, True)
        raise Unauthorized("invalid credentials", code="invalid_api_key")
    if not settings.require_api_keys:
        return Writer(None, True)
    raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")


def check_owner(who: Writer, resource_tenant: uuid.UUID | None) -> None:
    """Raise 403 ``not_resource_owner`` unless ``who`` may change a resource owned by ``resource_tenant``."""
    if who.operator:
        return
    if resource_tenant is None or resource_tenant != who.tenant_id:
        raise Forbidden("this resource belongs to another tenant", code="not_resource_owner")
