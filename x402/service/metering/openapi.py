"""OpenAPI of metering: ``/v1/events`` and its schemas."""

from __future__ import annotations

from typing import Any, Final

from x402.service.events.openapi import _PAGE as PAGE
from x402.service.metering.ingest import ID_PATTERN, MAX_BATCH, MAX_VALUE, METER_PATTERN
from x402.service.metering.ledger import CHARGE_KEY_PATTERN, CHARGE_STATES, COUNTER, KINDS, REFERENCE_PATTERN
from x402.service.metering.plans import AGGREGATIONS, MAX_FEATURES, PRICE_PATTERN

_PROBLEM: Final = {"$ref": "#/components/responses/Problem"}
_KEYED: Final[list[dict[str, list[str]]]] = [{"bearer": []}, {"apiKey": []}]
_STR: Final = {"type": "string"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    headers: dict[str, Any] | None = None,
    conflict: bool = False,
    created: bool = False,
    body_required: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _json(ok)}}
    if created:
        responses["201"] = {"description": "Created", "content": _json(ok)}
    if headers:
        responses["200"]["headers"] = headers
    codes = ["400", "401", "403", "422", "429"] + (["404"] if params else []) + (["409"] if conflict else [])
    for code in sorted(codes):
        responses[code] = _PROBLEM
    op: dict[str, Any] = {"summary": summary, "tags": ["metering"], "security": _KEYED, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": _json(body)}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, pattern: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_KEY: Final = {"type": "string", "pattern": METER_PATTERN}
_COUNT: Final = {"type": "integer", "minimum": 0, "maximum": MAX_VALUE}


def _per_meter(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "propertyNames": _KEY, "additionalProperties": value}


_RATE: Final = _obj(
    {"credits": _COUNT, "per": {"type": "integer", "minimum": 1, "maximum": MAX_VALUE}},
    ("credits", "per"),
    closed=True,
)
METER: Final = _obj(
    {
        "key": _STR,
        "aggregation": {"type": "string", "enum": list(AGGREGATIONS)},
        "property": {"type": ["string", "null"]},
    },
    ("key", "aggregation", "property"),
)
PLAN: Final = _obj(
    {
        "key": _STR,
        "features": {"type": "array", "items": _STR},
        "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
        "stop": {"type": "string", "enum": ["hard", "soft"]},
        "overage": {"type": "object", "additionalProperties": _STR},
        "burnRates": {"type": "object", "additionalProperties": _RATE},
        "allowNegative": {"type": "boolean"},
    },
    ("key", "features", "limits", "stop", "overage", "burnRates", "allowNegative"),
)
_NINT: Final = {"type": ["integer", "null"]}
_NSTR: Final = {"type": ["string", "null"]}
CREDIT_ENTRY: Final = _obj(
    {
        "txn": {"type": "string", "format": "uuid"},
        "seq": {"type": "integer"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "credits": {"type": "integer", "description": "signed: added to (+) or taken from (-) the balance"},
        "balance": {"type": "integer", "description": "the balance after this entry"},
        "counterAccount": {"type": "string", "enum": sorted(set(COUNTER.values()))},
        "meter": _NSTR,
        "units": _NINT,
        "reference": {
            "type": ["string", "null"],
            "description": "idempotency key; an expiry written by the expiry pass names the lot: <kind>:<txn>",
        },
        "expiresAt": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "a grant's or purchase's credits expire then (unspent ones become an expiry entry)",
        },
        "createdAt": _STR,
        "state": {
            "type": "string",
            "enum": list(CHARGE_STATES),
            "description": "the answers of the charges API only: the charge's state after this call",
        },
    },
    (
        "txn",
        "seq",
        "kind",
        "credits",
        "balance",
        "counterAccount",
        "meter",
        "units",
        "reference",
        "expiresAt",
        "createdAt",
    ),
)
_STATE: Final = {
    "type": "string",
    "enum": list(CHARGE_STATES),
    "description": "held: burned, the handler has not answered (refunded by the hold pass after the hold timeout); "
    "captured: answered, final; refunded: given back (burn_refund)",
}
CREDIT_CHARGE: Final = _obj(
    {
        "customer": _STR,
        "key": _STR,
        "reference": {"type": "string", "description": "the burn's reference: the key, or key/n after n-1 refunds"},
        "txn": {"type": "string", "format": "uuid", "description": "the burn's ledger transaction"},
        "credits": {"type": "integer", "description": "credits the burn took"},
        "state": _STATE,
        "createdAt": _STR,
        "settledAt": {"type": ["string", "null"], "description": "when it was captured or refunded"},
    },
    ("customer", "key", "reference", "txn", "credits", "state", "createdAt", "settledAt"),
)
ENTITLEMENTS: Final = _obj(
    {
        "customer": _STR,
        "plan": _STR,
        "stop": {"type": "string", "enum": ["hard", "soft"]},
        "features": {"type": "array", "items": _STR},
        "period": _obj({"key": _STR, "start": _STR, "end": _STR}, ("key", "start", "end")),
        "meters": {
            "type": "array",
            "items": _obj(
                {
                    "meter": _STR,
                    "used": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "remaining": {"type": "integer"},
                    "percent": {"type": "integer"},
                    "allowed": {"type": "boolean"},
                    "overageUnits": {"type": "integer"},
                    "overageAmount": {"type": "string", "pattern": "^[0-9]+$", "description": "atomic units"},
                },
                ("meter", "used", "limit", "remaining", "percent", "allowed", "overageUnits", "overageAmount"),
            ),
        },
        "warning": {"type": ["integer", "null"], "enum": [80, 90, 100, None]},
    },
    ("customer", "plan", "stop", "features", "period", "meters", "warning"),
)


#: One usage event as documented; the batch schema accepts any item, since a bad event gets its own error in the
#: 200 answer instead of failing the batch.
USAGE_EVENT: Final = _obj(
    {
        "id": {"type": "string", "pattern": ID_PATTERN, "description": "idempotency key, unique per tenant"},
        "customer": {"type": "string", "pattern": ID_PATTERN},
        "meter": {"type": "string", "pattern": METER_PATTERN},
        "value": {"type": "integer", "minimum": 0, "maximum": MAX_VALUE, "default": 1},
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "when it happened (default now); within the late window, at most 5 minutes ahead",
        },
        "properties": {"type": "object"},
    },
    ("id", "customer", "meter"),
    closed=True,
)


def paths() -> dict[str, dict[str, Any]]:
    """The metering operations."""
    batch = _obj(
        {
            "events": {
                "type": "array",
                "maxItems": MAX_BATCH,
                "items": {"description": "a UsageEvent; an invalid one is reported in `errors`"},
            }
        },
        ("events",),
        closed=True,
    )
    answer = _obj(
        {
            "accepted": {"type": "array", "items": _STR, "description": "event ids stored by this call"},
            "duplicates": {"type": "array", "items": _STR, "description": "ids already stored (counted once)"},
            "errors": {
                "type": "array",
                "items": _obj(
                    {
                        "index": {"type": "integer"},
                        "id": {"type": ["string", "null"]},
                        "code": _STR,
                        "detail": _STR,
                    },
                    ("index", "id", "code", "detail"),
                ),
            },
        },
        ("accepted", "duplicates", "errors"),
    )
    meter_body = {
        "oneOf": [
            _obj(
                {"aggregation": {"type": "string", "enum": ["sum", "count", "max"]}, "property": {"type": "null"}},
                closed=True,
            ),
            _obj({"aggregation": {"const": "unique"}, "property": _KEY}, ("aggregation", "property"), closed=True),
        ],
        "description": "sum (the default), count, max, or unique (the count of distinct values of `property`)",
    }
    plan_body = _obj(
        {
            "features": {"type": ["array", "null"], "maxItems": MAX_FEATURES, "items": _KEY},
            "limits": {"anyOf": [_per_meter(_COUNT), {"type": "null"}]},
            "stop": {"type": "string", "enum": ["hard", "soft"]},
            "overage": {"anyOf": [_per_meter({"type": "string", "pattern": PRICE_PATTERN}), {"type": "null"}]},
            "burnRates": {"anyOf": [_per_meter(_RATE), {"type": "null"}]},
            "allowNegative": {"type": "boolean"},
        },
        closed=True,
    )
    customer_body = _obj({"plan": _KEY}, ("plan",), closed=True)
    warning = {
        "X402-Quota-Warning": {
            "description": "the highest limit threshold (80, 90, 100) a meter of the customer has reached",
            "schema": {"type": "string", "enum": ["80", "90", "100"]},
        }
    }
    customer = _path("customer", ID_PATTERN)
    reference = {"type": ["string", "null"], "pattern": REFERENCE_PATTERN, "description": "idempotency key"}
    credits = {"type": "integer", "minimum": 1, "maximum": MAX_VALUE}
    expires_at = {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "grants only: an ISO-8601 instant with its offset, in the future (422 invalid_expires_at, "
        "expires_at_not_future); burns take credits expiring soonest first, the unspent rest expires then",
    }
    next_expiry = {
        "description": "the credits that expire next and when (null: none will)",
        "oneOf": [
            {"type": "null"},
            _obj(
                {"credits": {"type": "integer"}, "expiresAt": {"type": "string", "format": "date-time"}},
                ("credits", "expiresAt"),
            ),
        ],
    }
    entry_body = _obj(
        {
            "kind": {"type": "string", "enum": ["grant", "expiry", "refund"]},
            "credits": credits,
            "reference": reference,
            "expiresAt": expires_at,
        },
        ("kind", "credits"),
        closed=True,
    )
    burn_body = {
        "oneOf": [
            _obj({"credits": credits, "reference": reference}, ("credits",), closed=True),
            _obj(
                {"meter": _KEY, "units": credits, "reference": reference},
                ("meter", "units"),
                closed=True,
            ),
        ]
    }
    charge_key = {"type": "string", "pattern": CHARGE_KEY_PATTERN}
    charge_body = {
        "oneOf": [
            _obj({"key": charge_key, "credits": credits}, ("key", "credits"), closed=True),
            _obj({"key": charge_key, "meter": _KEY, "units": credits}, ("key", "meter", "units"), closed=True),
        ]
    }
    page = PAGE
    topup = _op(
        "Buy the configured credit pack over x402: 402 with its price (one offer per configured network, asset or "
        "scheme), then 201 with the purchase (200: this payment's purchase again; expiresAt set when the pack has "
        "expiresIn); served when X402_CREDIT_PACK is set",
        _ref("CreditEntry"),
        params=[
            *customer,
            {
                "name": "tenant",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "format": "uuid"},
                "description": "the provider's tenant id, for a payer without an API key",
            },
        ],
        created=True,
    )
    topup["security"] = [{}, *_KEYED]
    topup["responses"]["402"] = {
        "description": "Payment required: the PAYMENT-REQUIRED header holds the pack's price",
        "headers": {"PAYMENT-REQUIRED": {"schema": _STR}},
    }
    return {
        "/v1/credits/{customer}/topup": {"post": topup},
        "/v1/credits/{customer}": {
            "get": _op(
                "A customer's credit balance",
                _obj(
                    {
                        "customer": _STR,
                        "balance": {"type": "integer"},
                        "nextExpiry": next_expiry,
                        "updatedAt": _STR,
                    },
                    ("customer", "balance", "nextExpiry", "updatedAt"),
                ),
                params=customer,
            )
        },
        "/v1/credits/{customer}/history": {
            "get": _op(
                "A customer's ledger entries, newest first",
                _obj(
                    {"entries": {"type": "array", "items": _ref("CreditEntry")}, "nextCursor": _NSTR},
                    ("entries", "nextCursor"),
                ),
                params=[*customer, *page],
            )
        },
        "/v1/credits/{customer}/entries": {
            "post": _op(
                "Grant credits (optionally expiring at expiresAt), or take them back as an expiry or refund "
                "(201; 200 repeats a known reference)",
                _ref("CreditEntry"),
                body=entry_body,
                body_required=True,
                params=customer,
                conflict=True,
                created=True,
            )
        },
        "/v1/credits/{customer}/burn": {
            "post": _op(
                "Burn credits, or units of a meter at the plan's burn rate (409 insufficient_credits)",
                _ref("CreditEntry"),
                body=burn_body,
                body_required=True,
                params=customer,
                conflict=True,
            )
        },
        "/v1/credits/{customer}/charges": {
            "post": _op(
                "Charge one request in credits, once per key: credits, or units of a meter at the plan's burn rate "
                "(201; 200 answers the standing burn of a repeated key; 409 insufficient_credits)",
                _ref("CreditEntry"),
                body=charge_body,
                body_required=True,
                params=customer,
                conflict=True,
                created=True,
            )
        },
        "/v1/credits/{customer}/charges/{key}": {
            "get": _op(
                "The last attempt of a charge key and its state (held, captured, refunded; 404 charge_not_found)",
                _ref("CreditCharge"),
                params=[*customer, *_path("key", CHARGE_KEY_PATTERN)],
            )
        },
        "/v1/credits/{customer}/charges/{key}/capture": {
            "post": _op(
                "The handler answered: the held charge becomes captured, final (200, also when captured before; "
                "409 charge_refunded when it was refunded first, e.g. by the hold pass; 404 charge_not_found)",
                _ref("CreditCharge"),
                params=[*customer, *_path("key", CHARGE_KEY_PATTERN)],
                conflict=True,
            )
        },
        "/v1/credits/{customer}/charges/{key}/refund": {
            "post": _op(
                "Give back the standing burn of a charge key (a burn_refund entry; 200: refunded already; 404 "
                "charge_not_found)",
                _ref("CreditEntry"),
                params=[*customer, *_path("key", CHARGE_KEY_PATTERN)],
                conflict=True,
                created=True,
            )
        },
        "/v1/meters/{key}": {
            "put": _op("Create or replace a meter", _ref("Meter"), body=meter_body, params=_path("key", METER_PATTERN))
        },
        "/v1/meters": {
            "get": _op("The caller's meters", _obj({"meters": {"type": "array", "items": _ref("Meter")}}, ("meters",)))
        },
        "/v1/plans/{key}": {
            "put": _op(
                "Create or replace a plan (features, limits per meter, hard/soft stop, overage, burn rates)",
                _ref("Plan"),
                body=plan_body,
                params=_path("key", METER_PATTERN),
            )
        },
        "/v1/plans": {
            "get": _op("The caller's plans", _obj({"plans": {"type": "array", "items": _ref("Plan")}}, ("plans",)))
        },
        "/v1/customers/{id}": {
            "put": _op(
                "Put one of the caller's customers on a plan",
                _obj({"id": _STR, "plan": _STR}, ("id", "plan")),
                body=customer_body,
                body_required=True,
                params=_path("id", ID_PATTERN),
            )
        },
        "/v1/entitlements/{customer}": {
            "get": _op(
                "A customer's features and allowance per meter this period (cached, invalidated on change)",
                _ref("Entitlements"),
                params=_path("customer", ID_PATTERN),
                headers=warning,
            )
        },
        "/v1/events": {
            "post": _op(
                f"Report up to {MAX_BATCH} usage events (idempotent by id; bad events get per-event errors)",
                answer,
                body=batch,
            )
        },
    }


def schemas() -> dict[str, dict[str, Any]]:
    """components/schemas entries."""
    return {
        "UsageEvent": USAGE_EVENT,
        "Meter": METER,
        "Plan": PLAN,
        "Entitlements": ENTITLEMENTS,
        "CreditEntry": CREDIT_ENTRY,
        "CreditCharge": CREDIT_CHARGE,
    }
