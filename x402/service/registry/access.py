"""Who may write registry resources, and ownership checks.

* A platform API key (the principal the platform attached to the request) acts for its tenant: it needs the
  ``registry`` scope, its new resources get its ``tenant_id``, and it may change only resources of that tenant.
* The operator (platform principal with ``operator``, or ``Authorization: Bearer <X402_ADMIN_TOKEN>`` when the
  platform did not authenticate the request) may change everything.
* With ``require_api_keys`` off (apps built in code, dev), anonymous writes are allowed and act as the operator.
* Otherwise a write without credentials is 401 ``api_key_required``.
Resources with no tenant (crawled without a tenant key, catalogued from bazaar payments) are operator-only.
Another tenant's resource is not found for writes (404, as every other object), and its ``tenantId`` is shown
only to its owner and the operator. Reads of ``/v1/resources/{id}`` need a key when keys are required.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from aiohttp import web

from x402.errors import NotFound, Unauthorized
from x402.service.appkeys import SETTINGS
from x402.service.platform.auth import principal_of


@dataclass(frozen=True, slots=True)
class Writer:
    """The caller of a registry write: a tenant, or the operator (``tenant_id`` None)."""

    tenant_id: uuid.UUID | None
    operator: bool


def _operator_token(request: web.Request) -> bool:
    """True for ``Bearer <X402_ADMIN_TOKEN>`` (apps without the platform); 401 for another bearer token."""
    settings = request.app[SETTINGS]
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if settings.admin_token and scheme.lower() == "bearer" and token:
        if hmac.compare_digest(token.encode(), settings.admin_token.encode()):
            return True
        raise Unauthorized("invalid credentials", code="invalid_api_key")
    return False


def _anonymous(request: web.Request) -> None:
    if request.app[SETTINGS].require_api_keys:
        raise Unauthorized("an API key is required (Authorization: Bearer x402_...)", code="api_key_required")


def writer(request: web.Request) -> Writer:
    """The caller allowed to write, or raise 401/403."""
    principal = principal_of(request)
    if principal is not None:
        if principal.operator:
            return Writer(None, True)
        principal.require("registry")
        return Writer(principal.tenant_id, False)
    if _operator_token(request):
        return Writer(None, True)
    _anonymous(request)
    return Writer(None, True)


def reader(request: web.Request) -> Writer | None:
    """The caller of a registry read (any valid key); None for an anonymous read with keys off."""
    principal = principal_of(request)
    if principal is not None:
        return Writer(None, True) if principal.operator else Writer(principal.tenant_id, False)
    if _operator_token(request):
        return Writer(None, True)
    _anonymous(request)
    return None


def sees_owner(who: Writer | None, resource_tenant: uuid.UUID | None) -> bool:
    """Whether ``who`` may see which tenant owns a resource (its owner and the operator only)."""
    if who is None:
        return False
    return who.operator or (resource_tenant is not None and resource_tenant == who.tenant_id)


def check_owner(who: Writer, resource_tenant: uuid.UUID | None) -> None:
    """Raise 404 ``resource_not_found`` unless ``who`` may change a resource owned by ``resource_tenant``."""
    if who.operator:
        return
    if resource_tenant is None or resource_tenant != who.tenant_id:
        raise NotFound("no such resource", code="resource_not_found")
