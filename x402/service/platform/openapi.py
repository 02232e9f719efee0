"""The OpenAPI 3.1 document of the whole service (``/openapi.json``) and a self-contained page (``/docs``)."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from x402 import __version__
from x402.service.appkeys import OPTIONS, SETTINGS
from x402.service.events.openapi import event_schemas
from x402.service.events.openapi import paths as webhook_paths
from x402.service.events.openapi import webhooks as webhook_events
from x402.service.metering.openapi import paths as metering_paths
from x402.service.metering.openapi import schemas as metering_schemas
from x402.service.platform.docs_page import PAGE
from x402.service.platform.keys import SCOPES
from x402.service.platform.openapi_analytics import analytics_paths
from x402.service.platform.openapi_features import feature_paths
from x402.service.platform.payments_routes import CURSOR_PATTERN
from x402.service.proxy.openapi import paths as proxy_paths
from x402.wire.models import encode_json

routes = web.RouteTableDef()

#: Routes outside the JSON API, so outside this document: the dashboard's HTML pages, its sign-in forms and static
#: files (a browser's, not an API client's; the data they show comes from the documented routes).
NOT_API_PREFIXES = ("/dashboard",)


def is_api_route(path: str) -> bool:
    """True when ``path`` (a route template) belongs to the JSON API and so to this document."""
    return not any(path == p or path.startswith(p + "/") for p in NOT_API_PREFIXES)


_PROBLEM = {"$ref": "#/components/responses/Problem"}
_KEYED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
_OBJ: dict[str, Any] = {"type": "object"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    tag: str,
    ok: dict[str, Any] | None = None,
    *,
    status: str = "200",
    body: dict[str, Any] | None = None,
    keyed: bool = True,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = ("400", "401", "403", "404", "429"),
    content_type: str = "application/json",
    body_required: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {status: {"description": "OK", "content": {content_type: {"schema": ok or _OBJ}}}},
    }
    for code in errors if keyed else ("400",):
        op["responses"][code] = _PROBLEM
    if keyed:
        op["security"] = _KEYED
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
        if any(p.get("name") == "Idempotency-Key" for p in params):
            op["responses"]["422"] = _PROBLEM  # the key was used with another request
    return op


def _q(name: str, desc: str, fmt: str | None = None, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = dict(schema or {"type": "string"})
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}


_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays the stored answer for 24 h (Idempotent-Replayed: true); another body gives 422.",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}

_STR: dict[str, Any] = {"type": "string"}
#: Payment requirements as the wire structs (x402/wire/models.py) decode them, per protocol version.
_REQUIREMENTS: dict[int, dict[str, Any]] = {
    1: {
        "type": "object",
        "required": [
            "scheme",
            "network",
            "maxAmountRequired",
            "resource",
            "description",
            "mimeType",
            "payTo",
            "maxTimeoutSeconds",
            "asset",
        ],
        "properties": {
            **dict.fromkeys(
                ("scheme", "network", "maxAmountRequired", "resource", "description", "mimeType", "payTo"), _STR
            ),
            "asset": _STR,
            "maxTimeoutSeconds": {"type": "integer"},
            "outputSchema": _OBJ,
            "extra": _OBJ,
        },
    },
    2: {
        "type": "object",
        "required": ["scheme", "network", "amount", "asset", "payTo", "maxTimeoutSeconds"],
        "properties": {
            **dict.fromkeys(("scheme", "network", "amount", "asset", "payTo"), _STR),
            "maxTimeoutSeconds": {"type": "integer"},
            "extra": _OBJ,
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string"},
            "detail": {"type": "string"},
            "requestId": {"type": "string"},
            "traceId": {
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "OpenTelemetry trace id of the request (only when trace export is on)",
            },
        },
    },
    "Tenant": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "tier": {"type": "string", "enum": ["free", "starter", "pro", "enterprise"]},
            "status": {"type": "string", "enum": ["active", "suspended", "deleted"]},
            "createdAt": {"type": "string", "format": "date-time"},
        },
    },
    "ApiKey": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "tenantId": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "prefix": {"type": "string"},
            "mode": {"type": "string", "enum": ["live", "test"]},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "createdAt": {"type": "string", "format": "date-time"},
            "revokedAt": {"type": "string", "format": "date-time"},
            "lastUsedAt": {"type": "string", "format": "date-time"},
            "key": {"type": "string", "description": "x402_<mode>_<prefix>_<secret>: present once, at creation"},
        },
    },
    "Payment": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "kind": {"type": "string", "enum": ["verify", "settle", "verify_tx"]},
            "status": {"type": "string"},
            "network": {"type": "string"},
            "asset": {"type": "string"},
            "payer": {"type": "string"},
            "payTo": {"type": "string"},
            "amount": {"type": "string", "description": "atomic units"},
            "transaction": {"type": "string"},
            "reason": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "resource": {"type": "string", "description": "the paid resource's URL as the payment named it"},
            "method": {"type": "string"},
            "risk": {
                "type": "object",
                "description": "the risk stage's assessment of this payment, when it ran",
                "required": ["recommendation", "level", "flags"],
                "properties": {
                    "recommendation": {"type": "string"},
                    "level": {"type": ["string", "null"]},
                    "flags": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
    "RecordDeadLetter": {
        "type": "object",
        "required": ["id", "count", "error", "attempts", "createdAt", "status"],
        "properties": {
            "id": {"type": "integer"},
            "count": {"type": "integer", "description": "records and event-only items in the batch"},
            "error": {"type": "string", "description": "why the batch could not be written"},
            "attempts": {"type": "integer", "description": "replays tried"},
            "lastError": {"type": ["string", "null"]},
            "createdAt": {"type": "string", "format": "date-time"},
            "lastAttemptAt": {"type": ["string", "null"], "format": "date-time"},
            "replayedAt": {"type": ["string", "null"], "format": "date-time"},
            "status": {"type": "string", "enum": ["open", "replayed"]},
        },
    },
    # x402Version (when sent) equals paymentPayload.x402Version: one variant per protocol version
    "FacilitatorRequest": {
        "oneOf": [
            {
                "type": "object",
                "required": ["paymentPayload", "paymentRequirements"],
                "properties": {
                    "x402Version": {"const": v},
                    "paymentPayload": {
                        "type": "object",
                        "required": ["x402Version", "payload", *(["scheme", "network"] if v == 1 else ["accepted"])],
                        "properties": {
                            "x402Version": {"const": v},
                            "payload": _OBJ,
                            **(
                                {"scheme": {"type": "string"}, "network": {"type": "string"}}
                                if v == 1
                                else {"accepted": _REQUIREMENTS[2]}
                            ),
                        },
                    },
                    "paymentRequirements": _REQUIREMENTS[v],
                },
            }
            for v in (1, 2)
        ]
    },
    "VerifyResponse": {
        "type": "object",
        "required": ["isValid"],
        "properties": {
            "isValid": {"type": "boolean"},
            "invalidReason": {"type": "string"},
            "invalidMessage": {"type": "string"},
            "payer": {"type": "string"},
        },
    },
    "SettleResponse": {
        "type": "object",
        "required": ["success", "transaction", "network"],
        "properties": {
            "success": {"type": "boolean"},
            "errorReason": {"type": "string"},
            "errorMessage": {"type": "string"},
            "payer": {"type": "string"},
            "transaction": {"type": "string"},
            "network": {"type": "string"},
            "amount": {"type": "string"},
        },
    },
    "VerifyTxRequest": {
        "type": "object",
        "required": ["network", "transaction", "payTo", "asset", "minAmount"],
        "properties": {
            # the enum of configured networks is filled in from the running app's settings (build_document)
            "network": {"type": "string"},
            "transaction": {"type": "string", "pattern": "^(0x[0-9a-fA-F]{64}|[1-9A-HJ-NP-Za-km-z]{64,88})$"},
            "payTo": {"type": "string"},
            "asset": {"type": "string"},
            # canonical atomic units below 2**256 (x402/wire/models.py parse_amount); 77 digits always fit
            "minAmount": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,76})$"},
            "confirmations": {"type": "integer", "minimum": 0, "maximum": 1000},
        },
    },
}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"data": {"type": "array", "items": _ref(name)}}}


_LETTER_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]
_OPERATOR_ERRORS = ("400", "401", "403", "404")


def record_dead_letter_paths() -> dict[str, dict[str, Any]]:
    """The operator's view of payment-record batches that could not be written (platform/deadletters.py)."""
    base = "/v1/admin/record-dead-letters"
    return {
        base: {
            "get": _op(
                "Payment-record batches that could not be written (operator only; oldest first)",
                "operations",
                {"type": "object", "properties": {"data": {"type": "array", "items": _ref("RecordDeadLetter")}}},
                params=[
                    _q("status", "open (default), replayed or all", schema={"enum": ["open", "replayed", "all"]}),
                    _q("limit", "1-500, default 100", schema={"type": "integer", "minimum": 1, "maximum": 500}),
                ],
                errors=("400", "401", "403"),
            )
        },
        base + ":replay": {
            "post": _op(
                "Replay every open dead letter now (up to 500; idempotent: ids already written are skipped)",
                "operations",
                {
                    "type": "object",
                    "required": ["replayed", "open"],
                    "properties": {"replayed": {"type": "integer"}, "open": {"type": "integer"}},
                },
                errors=("400", "401", "403"),
            )
        },
        base + "/{id}": {
            "get": _op(
                "One dead letter with its records and events",
                "operations",
                {
                    "allOf": [
                        _ref("RecordDeadLetter"),
                        {
                            "type": "object",
                            "properties": {
                                "records": {"type": "array", "items": _OBJ},
                                "events": {"type": "array", "items": _OBJ},
                            },
                        },
                    ]
                },
                params=_LETTER_ID,
                errors=_OPERATOR_ERRORS,
            )
        },
        base + "/{id}/replay": {
            "post": _op(
                "Write one dead letter's records and events now (idempotent); its state afterwards",
                "operations",
                _ref("RecordDeadLetter"),
                params=_LETTER_ID,
                errors=_OPERATOR_ERRORS,
            )
        },
    }


def base_paths() -> dict[str, dict[str, Any]]:
    """Operations of the routes the core and the platform mount."""
    payments_list = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref("Payment")},
            "hasMore": {"type": "boolean"},
            "nextCursor": {"type": "string"},
        },
    }
    post_idem = [_IDEMPOTENCY]
    return {
        "/healthz": {"get": _op("Liveness", "operations", keyed=False)},
        "/readyz": {"get": _op("Readiness of Postgres, Redis and chain RPCs", "operations", keyed=False)},
        "/metrics": {
            "get": _op("Prometheus metrics", "operations", {"type": "string"}, content_type="text/plain", keyed=False)
        },
        "/supported": {"get": _op("Payment kinds and signers this facilitator settles", "facilitator", keyed=False)},
        "/.well-known/x402": {"get": _op("Discovery document and service manifest", "discovery", keyed=False)},
        "/openapi.json": {"get": _op("This document", "operations", keyed=False)},
        "/docs": {
            "get": _op("API reference page", "operations", {"type": "string"}, content_type="text/html", keyed=False)
        },
        "/verify": {
            "post": _op(
                "Verify a payment (scope verify; counts toward the monthly quota)",
                "facilitator",
                _ref("VerifyResponse"),
                body=_ref("FacilitatorRequest"),
                params=post_idem,
                errors=("400", "401", "403", "404", "409", "429", "503"),
            )
        },
        "/settle": {
            "post": _op(
                "Settle a payment at most once and answer success once per payment (later identical settles: "
                "duplicate_settlement with the transaction; the same Idempotency-Key or payment-identifier id: the "
                "original success; scope settle)",
                "facilitator",
                _ref("SettleResponse"),
                body=_ref("FacilitatorRequest"),
                params=post_idem,
                errors=("400", "401", "403", "404", "409", "429", "503"),
            )
        },
        "/v1/payments/verify-tx": {
            "post": _op(
                "Verify a plain on-chain payment by transaction id (scope verify; once per tenant and payTo; "
                "403 payto_claimed for another tenant's claimed payTo)",
                "facilitator",
                body=_ref("VerifyTxRequest"),
                params=post_idem,
                errors=("400", "401", "403", "404", "429", "503"),
            )
        },
        "/v1/payto-claims": {
            "post": _op(
                "Claim a payTo with a signature of the claim message by its key (EIP-191 or ed25519; scope verify)",
                "facilitator",
                status="201",
                body={
                    "type": "object",
                    "required": ["address"],
                    "properties": {
                        "address": {"type": "string", "pattern": "^(0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44})$"},
                        "signature": {"type": "string"},
                    },
                },
                params=post_idem,
                errors=("400", "401", "403", "409", "429"),
            ),
            "get": _op("The tenant's payTo claims", "facilitator"),
        },
        "/v1/payto-claims/{id}": {"delete": _op("Give a payTo claim up", "facilitator", status="204", params=_ID)},
        "/v1/tenants": {
            "post": _op(
                "Create a tenant (operator)",
                "admin",
                _ref("Tenant"),
                status="201",
                body={
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "tier": {"type": "string"}},
                },
                params=post_idem,
            ),
            "get": _op("List tenants (operator: all; a tenant admin key: its own)", "admin", _list_of("Tenant")),
        },
        "/v1/tenants/{id}": {
            "get": _op("One tenant", "admin", _ref("Tenant"), params=_ID),
            "patch": _op(
                "Change a tenant's tier (operator)",
                "admin",
                _ref("Tenant"),
                body={"type": "object", "properties": {"tier": {"type": "string"}}},
                params=_ID,
            ),
            "delete": _op(
                "Delete the tenant's data and crypto-shred its wallet keys; a tombstone stays (operator)",
                "admin",
                _ref("Tenant"),
                params=[*_ID, _q("confirm", "the tenant id again")],
            ),
        },
        "/v1/tenants/{id}/suspend": {
            "post": _op(
                "Suspend a tenant: its keys get 403 tenant_suspended (operator)", "admin", _ref("Tenant"), params=_ID
            )
        },
        "/v1/tenants/{id}/reactivate": {
            "post": _op("Reactivate a suspended tenant (operator)", "admin", _ref("Tenant"), params=_ID)
        },
        "/v1/tenants/{id}/export": {
            "get": _op(
                "Every row of the tenant as JSON lines {table, row}; secrets redacted",
                "admin",
                {"type": "string"},
                params=_ID,
                content_type="application/x-ndjson",
            )
        },
        "/v1/tenants/{id}/keys": {
            "post": _op(
                "Create an API key (the secret is shown once)",
                "admin",
                _ref("ApiKey"),
                status="201",
                errors=("400", "401", "403", "404", "422", "429"),
                body_required=False,
                body={
                    "type": "object",
                    "properties": {
                        "scopes": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(SCOPES)}},
                        "mode": {"type": "string", "enum": ["live", "test"]},
                        "name": {"type": "string"},
                    },
                },
                params=[*_ID, _IDEMPOTENCY],
            ),
            "get": _op("List a tenant's API keys", "admin", _list_of("ApiKey"), params=_ID),
        },
        "/v1/keys/{id}/rotate": {
            "post": _op(
                "Rotate a key: a new secret; the old key stops after gracePeriodSeconds",
                "admin",
                _ref("ApiKey"),
                status="201",
                errors=("400", "401", "403", "404", "422", "429"),
                body_required=False,
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"gracePeriodSeconds": {"type": "integer", "minimum": 0, "maximum": 2_592_000}},
                },
                params=[*_ID, _IDEMPOTENCY],
            )
        },
        "/v1/keys/{id}": {"delete": _op("Revoke a key", "admin", _ref("ApiKey"), params=_ID)},
        "/v1/payments": {
            "get": _op(
                "The tenant's payment records, newest first",
                "payments",
                payments_list,
                params=[
                    _q("status", "valid, invalid, success, failed, pending, verified, ..."),
                    _q("kind", "verify, settle or verify_tx"),
                    _q("network", "CAIP-2 id"),
                    _q("payer", "payer address"),
                    _q("payTo", "recipient address"),
                    _q("from", "inclusive start", "date-time"),
                    _q("to", "exclusive end", "date-time"),
                    _q("limit", "1-500, default 50", schema={"type": "integer", "minimum": 1, "maximum": 500}),
                    _q(
                        "cursor",
                        "nextCursor of the previous page (empty: the first page)",
                        schema={"type": "string", "pattern": CURSOR_PATTERN},
                    ),
                ],
            )
        },
        "/v1/payments/{id}": {"get": _op("One payment record", "payments", _ref("Payment"), params=_ID)},
        **record_dead_letter_paths(),
        "/v1/usage": {
            "get": _op(
                "Counts, volume by network and asset, unique payers, repeat rate, quota",
                "payments",
                params=[_q("from", "default: start of the month", "date-time"), _q("to", "default: now", "date-time")],
            )
        },
    }


def build_document(app: web.Application) -> dict[str, Any]:
    """The whole document: the base paths plus whatever feature modules registered."""
    settings = app[SETTINGS]
    paths = base_paths()
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    for path, ops in (feature_paths() | webhook_paths() | analytics_paths() | proxy_paths() | metering_paths()).items():
        if path in served:
            paths[path] = ops
    for path, extra in app[OPTIONS].openapi_paths.items():
        paths.setdefault(path, {}).update(copy.deepcopy(dict(extra)))
    schemas = {**copy.deepcopy(SCHEMAS), **event_schemas(), **metering_schemas()}
    # verify-tx answers 400 invalid_network for a network this deployment does not serve
    schemas["VerifyTxRequest"]["properties"]["network"]["enum"] = [n.network for n in settings.networks]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": settings.service_name,
            "version": __version__,
            "description": "x402 facilitator, payment records and multi-tenant platform API.",
        },
        "servers": [{"url": settings.public_url or "/"}],
        "paths": paths,
        # what the service POSTs to webhook endpoints, one entry per event type (x402/service/events/openapi.py)
        "webhooks": webhook_events(),
        "components": {
            "schemas": schemas,
            "responses": {
                "Problem": {
                    "description": "An error (RFC 9457) with a stable code",
                    "content": {"application/problem+json": {"schema": _ref("Problem")}},
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "x402_live_... or x402_test_..."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document."""
    return web.Response(body=encode_json(build_document(request.app)), content_type="application/json")


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    """A self-contained page that renders ``/openapi.json`` (no CDN)."""
    return web.Response(text=PAGE, content_type="text/html")
