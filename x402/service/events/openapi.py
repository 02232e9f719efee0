"""OpenAPI of webhooks: the ``/v1/webhooks`` operations, one schema per event type, and the 3.1 ``webhooks`` section.

Event schemas are stable: fields are only ever added (receivers ignore unknown ones); a removal or a change of
meaning bumps ``apiVersion``.
"""

from __future__ import annotations

from typing import Any, Final

from x402.service.events.endpoints import DEFAULT_OVERLAP, MAX_OVERLAP, SUBSCRIBABLE
from x402.service.events.outbox import EVENT_TYPES
from x402.service.registry.hosts import URL_PATTERN
from x402.webhooks import API_VERSION, DEFAULT_TOLERANCE, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER

_PROBLEM: Final = {"$ref": "#/components/responses/Problem"}
_KEYED: Final[list[dict[str, list[str]]]] = [{"bearer": []}, {"apiKey": []}]
_STR: Final = {"type": "string"}
_NSTR: Final = {"type": ["string", "null"]}
_INT: Final = {"type": "integer"}
_NINT: Final = {"type": ["integer", "null"]}
_TIME: Final = {"type": "string", "format": "date-time"}
_NTIME: Final = {"type": ["string", "null"], "format": "date-time"}
_AMOUNT: Final = {"type": "string", "pattern": "^[0-9]+$", "description": "atomic units"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


_PAYMENT: Final = _obj(
    {
        "paymentId": _STR,
        "settlementId": {"type": ["string", "integer"]},
        "kind": {"type": "string", "enum": ["verify", "settle", "verify_tx"]},
        "status": _STR,
        "network": _STR,
        "asset": _STR,
        "amount": _AMOUNT,
        "payer": _NSTR,
        "payTo": _NSTR,
        "transaction": _NSTR,
        "reason": _NSTR,
        "resource": _NSTR,
    },
)
_WALLET_PAYMENT: Final = _obj(
    {
        "walletId": _STR,
        "paymentId": _STR,
        "amount": _AMOUNT,
        "network": _STR,
        "asset": _STR,
        "payTo": _STR,
        "url": _STR,
        "transaction": _NSTR,
        "resolution": _STR,
        "reason": _STR,
    },
    ("walletId",),
)
_QUOTA: Final = _obj(
    {
        "threshold": {"type": "integer", "enum": [80, 90, 100]},
        "used": _INT,
        "limit": _INT,
        "tier": _STR,
        "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
    },
    ("used", "limit", "tier", "period"),
)
_RESOURCE: Final = _obj(
    {"resourceId": _STR, "url": _STR, "method": _STR, "reason": _NSTR, "previousStatus": _STR},
    ("resourceId", "url"),
)
_KEY: Final = _obj({"key": {"type": "object"}, "replacedBy": _STR}, ("key",))

#: ``data`` of each event type.
DATA: Final[dict[str, dict[str, Any]]] = {
    "payment.verified": _PAYMENT,
    "payment.settled": _PAYMENT,
    "payment.failed": _PAYMENT,
    "payment.pending": {
        "anyOf": [_PAYMENT, _WALLET_PAYMENT],
        "description": "a facilitator or an agent-wallet payment",
    },
    "payment.reconciled": _PAYMENT,
    "payment.duplicate": _PAYMENT,
    "risk.blocked": _PAYMENT,
    "quota.threshold": _QUOTA,
    "quota.exceeded": _QUOTA,
    "resource.down": _RESOURCE,
    "resource.up": _RESOURCE,
    "key.created": _KEY,
    "key.revoked": _KEY,
    "payment.made": _WALLET_PAYMENT,
    "payment.resolved": _WALLET_PAYMENT,
    "wallet.low_budget": _obj(
        {"walletId": _STR, "limit": _STR, "percent": _INT, "cap": _AMOUNT, "used": _AMOUNT}, ("walletId",)
    ),
    "wallet.paused": _obj({"walletId": _STR, "reason": _STR}, ("walletId",)),
    "wallet.resumed": _obj({"walletId": _STR}, ("walletId",)),
    "webhook.disabled": _obj({"endpointId": _STR, "url": _STR, "reason": _STR}, ("endpointId", "reason")),
    "webhook.ping": _obj({"endpointId": _STR}, ("endpointId",)),
}


def schema_name(event_type: str) -> str:
    """``payment.settled`` -> ``PaymentSettledEvent``."""
    return "".join(p.capitalize() for p in event_type.replace("_", ".").split(".")) + "Event"


def event_schemas() -> dict[str, dict[str, Any]]:
    """components/schemas entries: the envelope of each event type, plus the endpoint, delivery, dead letter."""
    out: dict[str, dict[str, Any]] = {}
    for kind in EVENT_TYPES:
        out[schema_name(kind)] = {
            "type": "object",
            "description": f"The `{kind}` event",
            "required": ["id", "type", "createdAt", "tenantId", "data", "apiVersion"],
            "properties": {
                "id": {"type": "string", "format": "uuid", "description": f"idempotent event id ({EVENT_ID_HEADER})"},
                "type": {"const": kind},
                "createdAt": _TIME,
                "tenantId": {"type": ["string", "null"], "format": "uuid"},
                "data": DATA[kind],
                "apiVersion": {"type": "string", "examples": [API_VERSION]},
            },
        }
    out["WebhookEndpoint"] = _obj(
        {
            "id": {"type": "string", "format": "uuid"},
            "url": _STR,
            "description": _STR,
            "events": {"type": "array", "items": _STR},
            "active": {"type": "boolean"},
            "disabledAt": _NTIME,
            "disabledReason": _NSTR,
            "consecutiveFailures": _INT,
            "previousSecretExpiresAt": _NTIME,
            "createdAt": _TIME,
            "updatedAt": _TIME,
        },
        ("id", "url", "description", "events", "active", "createdAt", "updatedAt"),
    )
    out["WebhookEndpointWithSecret"] = {
        "allOf": [
            _ref("WebhookEndpoint"),
            _obj({"secret": {"type": "string", "description": "signing secret, shown once"}}, ("secret",)),
        ]
    }
    out["WebhookDelivery"] = _obj(
        {
            "id": _STR,
            "eventId": _STR,
            "type": _STR,
            "status": {"type": "string", "enum": ["pending", "delivered", "dead"]},
            "attempts": _INT,
            "responseCode": _NINT,
            "latencyMs": _NINT,
            "responseExcerpt": _NSTR,
            "lastError": _NSTR,
            "createdAt": _TIME,
            "lastAttemptAt": _NTIME,
            "nextAttemptAt": _NTIME,
            "deliveredAt": _NTIME,
        },
        ("id", "eventId", "type", "status", "attempts"),
    )
    out["WebhookDeadLetter"] = _obj(
        {
            "id": _STR,
            "deliveryId": _STR,
            "endpointId": _STR,
            "eventId": _STR,
            "type": _STR,
            "attempts": _INT,
            "lastError": _NSTR,
            "responseCode": _NINT,
            "deliveryStatus": {"type": "string", "enum": ["pending", "delivered", "dead"]},
            "replayCount": _INT,
            "lastReplayedAt": _NTIME,
            "createdAt": _TIME,
        },
        ("id", "deliveryId", "endpointId", "eventId", "type", "attempts", "replayCount"),
    )
    return out


#: What check_http_url accepts (the registry's strict URL check), before the SSRF guard.
_URL_BODY: Final = {"type": "string", "pattern": URL_PATTERN, "maxLength": 2048}
_EVENTS: Final = {
    "type": ["array", "null"],
    "minItems": 1,
    "items": {"type": "string", "enum": ["*", *SUBSCRIBABLE]},
    "description": "event types to receive; `*` = all (null or left out: all on create, unchanged on update)",
}
_DESCRIPTION: Final = {"type": ["string", "null"], "maxLength": 500}
_TIME_Q: Final = {"anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}], "description": "empty: none"}
_UUID_RE: Final = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: The replay body's filter (null: no filter).
_FILTER: Final = {
    "endpointId": {"type": ["string", "null"], "pattern": _UUID_RE},
    "type": {"type": ["string", "null"], "enum": [*EVENT_TYPES, None]},
    "since": {"type": ["string", "null"], "format": "date-time"},
    "until": {"type": ["string", "null"], "format": "date-time"},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(
    summary: str,
    status: str,
    ok: dict[str, Any] | None,
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {status: {"description": "OK"}}
    if ok is not None:
        responses[status]["content"] = _json(ok)
    for code in ("400", "401", "403", "404", "422", "429"):
        responses[code] = _PROBLEM
    op: dict[str, Any] = {"summary": summary, "tags": ["webhooks"], "security": _KEYED, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": False, "content": _json(body)}
    if params:
        op["parameters"] = params
    return op


def _path(pattern: str, fmt: str | None = None) -> list[dict[str, Any]]:
    schema: dict[str, Any] = {"type": "string", "pattern": pattern}
    if fmt:
        schema["format"] = fmt
    return [{"name": "id", "in": "path", "required": True, "schema": schema}]


_UUID_ID: Final = _path(_UUID_RE, "uuid")
_LETTER_ID: Final = _path("^[0-9]{1,18}$")
_PAGE: Final = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100}, {"const": ""}]},
        "description": "1-100, default 50",
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": "^([0-9]{1,18})?$"},
        "description": "nextCursor of the previous page",
    },
]


def _q(name: str, schema: dict[str, Any], desc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


def paths() -> dict[str, dict[str, Any]]:
    """The ``/v1/webhooks`` operations."""
    endpoint, letter = _ref("WebhookEndpoint"), _ref("WebhookDeadLetter")

    def page(name: str, item: dict[str, Any]) -> dict[str, Any]:
        return _obj({name: {"type": "array", "items": item}, "nextCursor": _NSTR}, (name, "nextCursor"))

    create = _obj({"url": _URL_BODY, "events": _EVENTS, "description": _DESCRIPTION}, ("url",))
    create["additionalProperties"] = False
    patch = _obj({"url": _URL_BODY, "events": _EVENTS, "description": _DESCRIPTION, "active": {"type": "boolean"}})
    patch["additionalProperties"] = False
    rotate = _obj(
        {
            "overlapSeconds": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": MAX_OVERLAP,
                "description": f"how long the old secret keeps signing too (default {DEFAULT_OVERLAP})",
            }
        }
    )
    rotate["additionalProperties"] = False
    replay = _obj(dict(_FILTER))
    replay["additionalProperties"] = False
    letter_filters = [
        _q("endpointId", {"type": "string", "pattern": f"({_UUID_RE})|(^$)"}, "one endpoint's"),
        _q("type", {"type": "string", "enum": ["", *EVENT_TYPES]}, "one event type's"),
        _q("since", _TIME_Q, "dead-lettered at or after"),
        _q("until", _TIME_Q, "dead-lettered before"),
    ]
    return {
        "/v1/webhooks": {
            "post": _op(
                "Register an endpoint (event-type filter; the signing secret is shown once)",
                "201",
                _ref("WebhookEndpointWithSecret"),
                body=create,
            ),
            "get": _op(
                "The caller's webhook endpoints",
                "200",
                _obj({"webhooks": {"type": "array", "items": endpoint}}, ("webhooks",)),
            ),
        },
        "/v1/webhooks/{id}": {
            "get": _op("One endpoint", "200", endpoint, params=_UUID_ID),
            "patch": _op(
                "Change url, events, description; `active: true` re-enables a disabled endpoint",
                "200",
                endpoint,
                body=patch,
                params=_UUID_ID,
            ),
            "delete": _op("Remove an endpoint, its queue and dead letters", "204", None, params=_UUID_ID),
        },
        "/v1/webhooks/{id}/rotate-secret": {
            "post": _op(
                "A new signing secret (shown once); the old one also signs for overlapSeconds",
                "200",
                _ref("WebhookEndpointWithSecret"),
                body=rotate,
                params=_UUID_ID,
            )
        },
        "/v1/webhooks/{id}/ping": {
            "post": _op(
                "Send a webhook.ping event to this endpoint (see its delivery log)",
                "202",
                _obj({"eventId": _STR, "deliveryId": _STR}, ("eventId", "deliveryId")),
                params=_UUID_ID,
            )
        },
        "/v1/webhooks/{id}/deliveries": {
            "get": _op(
                "The endpoint's delivery log, newest first: status, latency, response code and body excerpt",
                "200",
                page("deliveries", _ref("WebhookDelivery")),
                params=[
                    *_UUID_ID,
                    _q("status", {"type": "string", "enum": ["", "pending", "delivered", "dead"]}, "one status"),
                    *_PAGE,
                ],
            )
        },
        "/v1/webhooks/dead-letters": {
            "get": _op(
                "Deliveries that failed for the whole retry window, newest first",
                "200",
                page("deadLetters", letter),
                params=[*letter_filters, *_PAGE],
            )
        },
        "/v1/webhooks/dead-letters/replay": {
            "post": _op(
                "Queue again every dead letter matching the filter (at most 1000; audited)",
                "200",
                _obj(
                    {
                        "replayed": _INT,
                        "deadLetterIds": {"type": "array", "items": _STR},
                        "truncated": {"type": "boolean"},
                    },
                    ("replayed", "deadLetterIds", "truncated"),
                ),
                body=replay,
            )
        },
        "/v1/webhooks/dead-letters/{id}": {
            "get": _op(
                "One dead letter with its event",
                "200",
                {"allOf": [letter, _obj({"event": {"type": "object"}}, ("event",))]},
                params=_LETTER_ID,
            )
        },
        "/v1/webhooks/dead-letters/{id}/replay": {
            "post": _op("Queue one dead letter again (audited)", "200", letter, params=_LETTER_ID)
        },
    }


def webhooks() -> dict[str, Any]:
    """The OpenAPI 3.1 ``webhooks`` section: what the service POSTs to endpoints, per event type."""
    headers = [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "schema": _STR,
            "description": (
                't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")> (a second v1 during a secret '
                f"rotation's overlap); refuse timestamps more than {DEFAULT_TOLERANCE} s from your clock"
            ),
        },
        {"name": EVENT_ID_HEADER, "in": "header", "required": True, "schema": _STR, "description": "dedupe on it"},
        {"name": EVENT_TYPE_HEADER, "in": "header", "required": True, "schema": _STR},
    ]
    return {
        kind: {
            "post": {
                "summary": f"`{kind}`",
                "parameters": headers,
                "requestBody": {"required": True, "content": _json(_ref(schema_name(kind)))},
                "responses": {"2XX": {"description": "Received (any other answer is retried)"}},
            }
        }
        for kind in EVENT_TYPES
    }
