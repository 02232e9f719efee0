"""OpenAPI of the routing proxy: ``POST /v1/call``, ``/v1/proxy/{resourceId}/{path}``, the calls views, resource
usage and wallet trust (merged into ``/openapi.json`` by ``x402/service/platform/openapi.py``)."""

from __future__ import annotations

from typing import Any, Final

from x402.service.proxy.routes import MAX_AMOUNT_HEADER, METHODS, RECEIPT_HEADER, WALLET_HEADER
from x402.wire.codec import PAYMENT_RESPONSE

_PROBLEM: Final = {"$ref": "#/components/responses/Problem"}
_KEYED: Final[list[dict[str, list[str]]]] = [{"bearer": []}, {"apiKey": []}]
_STR: Final = {"type": "string"}
_NSTR: Final = {"type": ["string", "null"]}
_INT: Final = {"type": "integer"}
_AMOUNT: Final = {"type": "string", "pattern": "^(0|[1-9][0-9]{0,77})$", "description": "atomic units"}
_TRUST_PROPS: Final[dict[str, Any]] = {
    "score": {"type": "integer", "minimum": 0, "maximum": 100},
    "factors": {"type": ["object", "null"], "description": "every signal and penalty (docs/trust.md)"},
    "computedAt": {"type": "string", "format": "date-time"},
}
_TRUST: Final = {
    "type": "object",
    "required": ["score", "factors"],
    "properties": _TRUST_PROPS,
}
_AGG: Final = {"calls": _INT, "paid": _INT, "amount": _AMOUNT, "fees": _AMOUNT, "avgLatencyMs": _INT}
_CALL: Final = {
    "type": "object",
    "required": ["id", "walletId", "resourceId", "status", "amount", "fee", "feeBps"],
    "properties": {
        "id": _STR,
        "walletId": _STR,
        "resourceId": _STR,
        "url": _STR,
        "method": _STR,
        "status": {"type": "string", "enum": ["paid", "free", "refused", "failed", "pending"]},
        "code": {
            "type": ["string", "null"],
            "description": "why the call failed or was refused; on a paid call whose stream was cut after the "
            "headers: upstream_too_large, upstream_timeout, upstream_broken, client_disconnected or stream_failed",
        },
        "upstreamStatus": {"type": ["integer", "null"]},
        "amount": _AMOUNT,
        "feeBps": {"type": "integer", "minimum": 0, "maximum": 10000},
        "fee": _AMOUNT,
        "paymentId": _NSTR,
        "latencyMs": _INT,
        "createdAt": {"type": "string", "format": "date-time"},
    },
}
_CALLS: Final = {"type": "array", "items": _CALL}
_STRINGS: Final = {"type": "object", "additionalProperties": {"type": "string"}}
_CALL_BODY: Final = {
    "type": "object",
    "required": ["resource"],
    "properties": {
        "resource": {"type": "string", "minLength": 1, "description": "a registry id or the listed URL"},
        "wallet": {"type": "string", "description": "the paying wallet (default: an agent key's one wallet)"},
        "method": {"type": "string", "enum": list(METHODS)},
        "path": {"type": "string", "description": "appended to the listed URL"},
        "query": _STRINGS,
        "headers": _STRINGS,
        "body": {"description": "a string, or JSON sent encoded"},
        "bodyBase64": {"type": "string", "contentEncoding": "base64"},
        "maxAmount": _AMOUNT,
    },
}
_PASSED: Final = {
    "description": f"The upstream's answer passed through, with {PAYMENT_RESPONSE} (the upstream's receipt) and "
    f"{RECEIPT_HEADER} (ours: base64 JSON with callId, amount, fee, feeBps, paymentId, transaction). A paid answer "
    "streams: status, headers and receipt as soon as the paid retry's headers arrive, then the body as it comes "
    "(X402_PROXY_MAX_BYTES and X402_PROXY_TIMEOUT still apply: a breach after the headers cuts the connection, "
    "so the body is visibly incomplete, and the call's code says why)",
    "headers": {RECEIPT_HEADER: {"schema": _STR}, PAYMENT_RESPONSE: {"schema": _STR}},
    "content": {"*/*": {"schema": {}}},
}
_PENDING: Final = {
    "description": "Payment sent, outcome unknown until the chain answers (problem payment_pending)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_CALL_ERRORS: Final = ("400", "401", "403", "404", "409", "422", "423", "429", "502", "504")


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: dict[str, Any], errors: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok, **dict.fromkeys(errors, _PROBLEM)}
    return {"summary": summary, "tags": ["proxy"], "security": _KEYED, "responses": responses, **extra}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _routed(method: str) -> dict[str, Any]:
    op = _op(
        "Pass-through: the listed resource's URL + path, paid from the agent's wallet at the listed price",
        _PASSED,
        _CALL_ERRORS,
        parameters=[
            _path("resourceId"),
            _path("path"),
            {"name": WALLET_HEADER, "in": "header", "required": False, "schema": _STR},
            {"name": MAX_AMOUNT_HEADER, "in": "header", "required": False, "schema": _AMOUNT},
        ],
    )
    op["responses"]["202"] = _PENDING
    op["responses"]["default"] = {"description": "The upstream's own status, passed through"}
    if method in ("POST", "PUT", "PATCH"):
        op["requestBody"] = {"required": False, "content": {"*/*": {"schema": {}}}}
    return op


def paths() -> dict[str, dict[str, Any]]:
    """Operations keyed by path then method."""
    call = _op(
        "Call a listed resource (registry id or URL): its 402 is paid from the agent's wallet at the listed price",
        _PASSED,
        _CALL_ERRORS,
        requestBody={"required": True, "content": {"application/json": {"schema": _CALL_BODY}}},
    )
    call["responses"]["202"] = _PENDING
    call["responses"]["default"] = {"description": "The upstream's own status, passed through"}
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"const": ""}]},
    }
    return {
        "/v1/call": {"post": call},
        "/v1/proxy/{resourceId}/{path}": {m.lower(): _routed(m) for m in METHODS},
        "/v1/calls": {
            "get": _op(
                "The caller's routed calls, newest first (an agent key: its wallets' calls)",
                _json(
                    {
                        "type": "object",
                        "required": ["calls"],
                        "properties": {"calls": {"type": "array", "items": _CALL}},
                    }
                ),
                ("400", "401", "403", "429"),
                parameters=[limit],
            )
        },
        "/v1/calls/summary": {
            "get": _op(
                "The caller's usage per resource: calls, paid calls, amount paid upstream, platform fees owed",
                _json(
                    {
                        "type": "object",
                        "required": ["resources"],
                        "properties": {
                            "resources": {
                                "type": "array",
                                "items": {"type": "object", "properties": {"resourceId": _STR, **_AGG}},
                            }
                        },
                    }
                ),
                ("401", "403", "429"),
            )
        },
        "/v1/resources/{id}/usage": {
            "get": _op(
                "The listing owner's view: every caller's calls to its resource as aggregates, revenue, trust",
                _json(
                    {
                        "type": "object",
                        "required": ["resourceId", "revenue", "callers"],
                        "properties": {
                            "resourceId": _STR,
                            **_AGG,
                            "revenue": _AMOUNT,
                            "callers": _INT,
                            "trust": {"oneOf": [_TRUST, {"type": "null"}]},
                        },
                    }
                ),
                ("401", "403", "404", "429"),
                parameters=[_path("id")],
            )
        },
        "/v1/wallets/{id}/trust": {
            "get": _op(
                "The wallet's trust score and factors (docs/trust.md), recomputed from its ledger",
                _json({**_TRUST, "properties": {"walletId": _STR, **_TRUST_PROPS}}),
                ("401", "403", "404", "429"),
                parameters=[_path("id")],
            )
        },
    }
