"""OpenAPI operations of routes other feature modules mount (registry, wallets, dev demo).

A caller may instead pass ``{path: {method: operation}}`` as ``AppOptions.openapi_paths`` to ``create_app``;
entries there win.
Only paths the app actually serves are merged (the dev demo exists in dev only).
"""

from __future__ import annotations

import re
from typing import Any

from risk.config import _ACTION_PARAMS, _FLOAT_PARAMS, _INT_PARAMS, DEFAULT_RULES, MAX_CUSTOM_RULES
from risk.model import ACTIONS, SEVERITIES
from wallets.policy import _LISTS, _MONEY
from x402.errors import PROBLEM_JSON
from x402.service.registry.hosts import URL_PATTERN
from x402.service.registry.routes import CURSOR_PATTERN, EXTENSIONS_PATTERN, MIN_TRUST_PATTERN
from x402.service.registry.validate import CHECKS as VALIDATE_CHECKS

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_PARAM = re.compile(r"\{(\w+)\}")

#: (method, path, summary, tag, needs a key, query parameters, success status)
_TABLE: list[tuple[str, str, str, str, bool, tuple[str, ...], str]] = [
    ("post", "/v1/resources", "Register a paid resource (scope registry)", "registry", True, (), "201"),
    (
        "get",
        "/v1/resources/{id}",
        "One resource with verification, liveness and popularity (tenantId for its owner only)",
        "registry",
        True,
        (),
        "200",
    ),
    ("patch", "/v1/resources/{id}", "Change a resource's provider-declared fields", "registry", True, (), "200"),
    ("delete", "/v1/resources/{id}", "Remove a resource", "registry", True, (), "200"),
    (
        "post",
        "/v1/resources/{id}/ratings",
        "Rate a resource 1..5: one rating per tenant (replaced by a new one), not your own, 30 an hour",
        "registry",
        True,
        (),
        "200",
    ),
    (
        "post",
        "/v1/resources/{id}/verify",
        "Probe the resource now and check ownership proofs",
        "registry",
        True,
        (),
        "200",
    ),
    (
        "post",
        "/v1/resources/import",
        "Crawl an origin's /.well-known/x402 and /openapi.json",
        "registry",
        True,
        (),
        "200",
    ),
    (
        "post",
        "/v1/resources/validate",
        "Check a listing before it is crawled: reachable, answers 402, parses, bazaar valid, ownership proven",
        "registry",
        True,
        (),
        "200",
    ),
    (
        "get",
        "/discovery/resources",
        "Bazaar discovery (the x402 bazaar extension), offset pagination",
        "discovery",
        False,
        ("type", "payTo", "scheme", "network", "extensions", "limit", "offset"),
        "200",
    ),
    (
        "get",
        "/discovery/search",
        "Ranked full-text search over resources, cursor pagination",
        "discovery",
        False,
        (
            "query",
            "type",
            "payTo",
            "scheme",
            "network",
            "extensions",
            "category",
            "maxPrice",
            "minTrust",
            "limit",
            "cursor",
        ),
        "200",
    ),
    (
        "post",
        "/v1/wallets",
        "Create an agent wallet with a policy (keys are never returned)",
        "wallets",
        True,
        (),
        "201",
    ),
    ("get", "/v1/wallets", "The caller's wallets", "wallets", True, (), "200"),
    ("get", "/v1/wallets/{id}", "One wallet with its remaining budget", "wallets", True, (), "200"),
    ("get", "/v1/wallets/{id}/budget", "Remaining budget: total and per rolling window", "wallets", True, (), "200"),
    ("get", "/v1/wallets/{id}/balance", "On-chain balances of the wallet's address", "wallets", True, (), "200"),
    ("get", "/v1/wallets/{id}/payments", "The wallet's ledger, newest first", "wallets", True, (), "200"),
    ("put", "/v1/wallets/{id}/policy", "Replace the wallet's policy", "wallets", True, (), "200"),
    ("post", "/v1/wallets/{id}/pause", "Pause the wallet", "wallets", True, (), "200"),
    ("post", "/v1/wallets/{id}/resume", "Resume a paused wallet", "wallets", True, (), "200"),
    (
        "post",
        "/v1/wallets/{id}/pay",
        "Fetch a URL and pay its 402 within policy and budget",
        "wallets",
        True,
        (),
        "200",
    ),
    ("get", "/v1/wallets/{id}/approvals", "Approvals of the wallet", "wallets", True, ("status",), "200"),
    ("post", "/v1/wallets/{id}/approvals/{aid}/approve", "Approve a pending payment", "wallets", True, (), "200"),
    ("post", "/v1/wallets/{id}/approvals/{aid}/reject", "Reject a pending payment", "wallets", True, (), "200"),
    (
        "post",
        "/v1/wallets/{id}/agent-keys",
        "An API key limited to this wallet (shown once)",
        "wallets",
        True,
        (),
        "201",
    ),
    ("get", "/v1/risk/rules", "The caller's risk rule document", "risk", True, (), "200"),
    ("put", "/v1/risk/rules", "Replace the risk rule document (validated, audited)", "risk", True, (), "200"),
    (
        "get",
        "/v1/risk/lists",
        "Address lists in force (allow, deny, exchange, mixer, exploit)",
        "risk",
        True,
        (),
        "200",
    ),
    ("post", "/v1/risk/lists/{name}", "Add addresses to a list (audited)", "risk", True, (), "200"),
    ("delete", "/v1/risk/lists/{name}", "Remove addresses from a list (audited)", "risk", True, (), "200"),
    ("get", "/v1/risk/audit", "Newest changes to the caller's risk rules and lists", "risk", True, (), "200"),
]


_INT = {"type": "integer"}
#: A risk threshold: a non-negative integer or its decimal string (amounts, like on the wire), null for none.
_THRESHOLD = {"type": ["integer", "string", "null"], "minimum": 0, "pattern": "^(0|[1-9][0-9]*)$"}


def _risk_rule(params: Any) -> dict[str, Any]:
    """One built-in rule's settings as risk/config.py validates them."""
    props: dict[str, Any] = {
        "enabled": {"type": "boolean"},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
    }
    for key in params:
        if key in _INT_PARAMS:
            props[key] = _THRESHOLD
        elif key in _FLOAT_PARAMS:
            props[key] = {"type": "number", "exclusiveMinimum": 0}
        elif key in _ACTION_PARAMS:
            props[key] = {"type": "string", "enum": list(ACTIONS)}
        elif key == "per_asset":
            props[key] = {"type": "object", "additionalProperties": _THRESHOLD}
    return {"type": "object", "additionalProperties": False, "properties": props}


#: What check_http_url accepts (x402/service/registry/hosts.py): the schema is no looser than the server
_URL = {"type": "string", "format": "uri", "pattern": URL_PATTERN, "maxLength": 2048}
#: Query parameter schemas as strict as the handlers' checks (others are plain strings).
_QUERY: dict[str, dict[str, Any]] = {
    # an empty value means the default, like leaving the parameter out (registry/routes.py _int_param, _filters)
    "limit": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100}, {"const": ""}]},
    "maxPrice": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,76})?$", "description": "atomic units"},
    "cursor": {"type": "string", "pattern": CURSOR_PATTERN, "description": "pagination.cursor of the previous page"},
    "offset": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 10**9}, {"const": ""}]},
    "type": {"type": "string", "enum": ["", "http", "mcp"], "description": "empty: any type"},
    "minTrust": {"type": "string", "pattern": MIN_TRUST_PATTERN, "description": "trust score 0..100 (docs/trust.md)"},
    "extensions": {
        "type": "string",
        "pattern": EXTENSIONS_PATTERN,
        "description": "comma-separated extension keys the resource declares, all of them (e.g. bazaar)",
    },
    "payTo": {"type": "string", "description": "an address among the resource's accepts[].payTo"},
    "scheme": {"type": "string", "description": "a scheme among accepts[].scheme (exact, upto)"},
    "network": {"type": "string", "description": "a network among accepts[].network (CAIP-2 or v1 name)"},
}
#: Request bodies the handlers require fields of; other bodies are objects.
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/resources/{id}/ratings"): {
        "type": "object",
        "required": ["rating"],
        "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
    },
    ("post", "/v1/resources"): {
        "type": "object",
        "required": ["url", "accepts"],
        "properties": {
            "url": _URL,
            "type": {"type": "string", "enum": ["http", "mcp"]},
            "x402Version": {"type": "integer", "enum": [1, 2]},
            "accepts": {"type": "array", "minItems": 1, "items": {"type": "object"}},
            "toolName": {
                "type": "string",
                "maxLength": 128,
                "description": "an mcp resource's tool (else inputSchema.toolName as bazaar declares it; older: tool)",
            },
        },
    },
    ("post", "/v1/resources/import"): {"type": "object", "required": ["origin"], "properties": {"origin": _URL}},
    ("post", "/v1/resources/validate"): {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": _URL,
            "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]},
        },
    },
    ("post", "/v1/wallets/{id}/pay"): {"type": "object", "required": ["url"], "properties": {"url": _URL}},
    # null leaves a field unset, like leaving it out
    ("put", "/v1/wallets/{id}/policy"): {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **{k: {"type": ["string", "null"], "pattern": "^(0|[1-9][0-9]{0,77})$"} for k in _MONEY},
            **{
                k: {"type": ["array", "null"], "maxItems": 1000, "items": {"type": "string", "minLength": 1}}
                for k in _LISTS
            },
            "expiresAt": {"type": ["string", "null"], "format": "date-time"},
            "minResourceTrust": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
            "autoPause": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "consecutiveFailures": {"type": ["integer", "null"], "minimum": 1},
                    "velocityPerMinute": {"type": ["integer", "null"], "minimum": 1},
                    "capShare": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
                },
            },
        },
    },
    ("put", "/v1/risk/rules"): {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": {
                "type": "object",
                "additionalProperties": False,
                "properties": {name: _risk_rule(params) for name, (_a, _s, params) in DEFAULT_RULES.items()},
            },
            "custom": {
                "type": "array",
                "maxItems": MAX_CUSTOM_RULES,
                "items": {
                    "type": "object",
                    "required": ["name", "when"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 64},
                        "when": {"type": "string", "description": "a rule expression"},
                        "action": {"type": "string", "enum": list(ACTIONS)},
                        "severity": {"type": "string", "enum": list(SEVERITIES)},
                        "message": {"type": "string", "maxLength": 300},
                    },
                },
            },
        },
    },
}
#: Operations that answer 400 invalid_json to an empty body.
_BODY_REQUIRED = {("put", "/v1/risk/rules")}
#: POST operations whose handlers read no body: no requestBody is documented.
_NO_BODY = {("post", "/v1/wallets/{id}/resume"), ("post", "/v1/wallets/{id}/agent-keys")}
#: Operations that answer something other than an object on success.
_ARRAYS = {("get", "/v1/risk/audit")}


def _operation(
    method: str, path: str, summary: str, tag: str, keyed: bool, query: tuple[str, ...], status: str
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            status: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
            if status != "204"
            else {"description": "No content"},
            "400": _PROBLEM,
            "404": _PROBLEM,
            "422": _PROBLEM,
        },
    }
    if (method, path) in _ARRAYS:
        op["responses"][status]["content"]["application/json"]["schema"] = {"type": "array", "items": {}}
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in _PARAM.findall(path)]
    params += [
        {"name": n, "in": "query", "required": False, "schema": _QUERY.get(n, {"type": "string"})} for n in query
    ]
    if params:
        op["parameters"] = params
    if keyed:
        op["security"] = [{"bearer": []}, {"apiKey": []}]
        op["responses"]["401"] = _PROBLEM
        op["responses"]["403"] = _PROBLEM
    if method in ("post", "put", "patch") and (method, path) not in _NO_BODY:
        body = _BODIES.get((method, path), {"type": "object"})
        needed = "required" in body or (method, path) in _BODY_REQUIRED
        op["requestBody"] = {"required": needed, "content": {"application/json": {"schema": body}}}
    return op


_JSONRPC_ERROR = {
    "type": "object",
    "required": ["jsonrpc", "error"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"type": ["string", "integer", "null"]},
        "error": {"type": "object", "required": ["code", "message"]},
    },
}


def _mcp_operation() -> dict[str, Any]:
    """``POST /v1/mcp``: the MCP gateway, streamable HTTP (stateless, JSON answers) carrying JSON-RPC messages."""
    rpc_error = {
        "description": "Refused by the MCP transport",
        "content": {"application/json": {"schema": _JSONRPC_ERROR}},
    }
    return {
        "summary": "MCP gateway for agents: tools search, describe, call and one per listed resource (scope wallets)",
        "tags": ["wallets"],
        "security": [{"bearer": []}, {"apiKey": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["jsonrpc", "method"],
                        "properties": {
                            "jsonrpc": {"const": "2.0"},
                            "id": {"type": ["string", "integer"]},
                            "method": {"type": "string"},
                            "params": {"type": "object", "description": "the method's parameters (the MCP schema)"},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "The JSON-RPC answer (a result, or an error object)",
                "content": {"application/json": {"schema": {"type": "object", "required": ["jsonrpc"]}}},
            },
            "202": {"description": "A notification or response was accepted"},
            "400": {
                "description": "Not a JSON-RPC 2.0 message (problem invalid_jsonrpc), or refused by the MCP transport",
                "content": {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}},
                    "application/json": {"schema": _JSONRPC_ERROR},
                },
            },
            "401": _PROBLEM,
            "403": _PROBLEM,
            "404": rpc_error,
            "406": rpc_error,
            "413": _PROBLEM,
            "415": _PROBLEM,
            "429": _PROBLEM,
        },
    }


def feature_paths() -> dict[str, dict[str, Any]]:
    """Operations keyed by path then method."""
    out: dict[str, dict[str, Any]] = {}
    for method, path, summary, tag, keyed, query, status in _TABLE:
        out.setdefault(path, {})[method] = _operation(method, path, summary, tag, keyed, query, status)
    pay = out["/v1/wallets/{id}/pay"]["post"]["responses"]
    # a payment sent without a receipt is pending (202); retries of it are refused (409) until the chain answers
    pay["202"] = {
        "description": "Payment sent, outcome unknown until the chain answers (problem payment_pending)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    pay["409"] = {"$ref": "#/components/responses/Problem"}
    pay["423"] = {"$ref": "#/components/responses/Problem"}
    pay["502"] = {"$ref": "#/components/responses/Problem"}
    check = {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"}, "detail": {"type": "string"}},
    }
    out["/v1/resources/validate"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "required": ["url", "method", "valid", "checks"],
        "properties": {
            "url": {"type": "string"},
            "method": {"type": "string"},
            "valid": {"type": "boolean"},
            "httpStatus": {"type": "integer"},
            "checks": {
                "type": "object",
                "required": list(VALIDATE_CHECKS),
                "properties": dict.fromkeys(VALIDATE_CHECKS, check),
            },
        },
    }
    # the origin's discovery documents cannot be fetched
    out["/v1/resources/import"]["post"]["responses"]["502"] = {"$ref": "#/components/responses/Problem"}
    out["/v1/mcp"] = {"post": _mcp_operation()}
    out["/demo/paid"] = {
        "get": {
            "summary": "Dev only: a resource behind the paywall (402 until paid)",
            "tags": ["dev"],
            "responses": {"200": {"description": "OK"}, "402": {"description": "Payment required"}},
        }
    }
    return out
