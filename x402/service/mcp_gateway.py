"""The MCP gateway for agents: ``/v1/mcp`` (streamable HTTP) whose tools are the registry's resources.

Free tools ``search`` and ``describe`` read the catalogue; ``call`` (and one ``r_<id>`` tool per listed HTTP
resource, its price in the description and ``_meta``) pays the resource from the caller's budgeted wallet through
``WalletPayer.pay``, the same path as ``POST /v1/wallets/{id}/pay``: policy, budget, reservation, signing and the
ledger are not repeated here. Authentication and scopes are the JSON API's (the platform middleware authenticates
every ``/v1/`` path; the ``wallets`` scope is required, an agent key reaches only its own wallets). Tool failures
are tool results with ``isError`` and the problem document (its ``code``) as structured content.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlencode

import msgspec
from aiohttp import web
from mcp import types
from mcp.server.lowlevel import Server

from wallets.payer import PayRequest
from wallets.service import WalletService
from wallets.store import Wallet
from x402.errors import BadRequest, NotFound, UnsupportedMediaType, ValidationFailed, X402Error
from x402.mcp.aiohttp_mount import aiohttp_request, mount
from x402.mcp.paid import PAYMENT_RESPONSE_META
from x402.service.appkeys import REGISTRY, WALLETS
from x402.service.platform.auth import principal_of
from x402.service.platform.hooks import scope_of
from x402.service.registry.models import Resource, check_http_url
from x402.service.registry.routes import CATALOGUE
from x402.service.registry.store import Filters
from x402.service.storage.scope import system_scope
from x402.service.wallets_api.access import Caller, caller_of, wallet_by_id
from x402.wire import jsonlimits

PATH: Final = "/v1/mcp"
#: Listed resources offered as their own tools (the newest first); the rest are reached through ``call``.
LISTED_TOOLS: Final = 50
RESOURCE_TOOL_PREFIX: Final = "r_"

_REQUEST_PROPS: dict[str, Any] = {
    "walletId": {"type": "string", "description": "wallet to pay from (default: the agent key's only wallet)"},
    "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
    "query": {"type": "object", "additionalProperties": {"type": "string"}},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "body": {"description": "JSON body (sent as application/json) or a string"},
    "maxAmount": {"type": "string", "description": "cap in atomic units (default: the listed price)"},
    "idempotencyKey": {"type": "string", "description": "a retry with the same key never pays twice"},
}

SEARCH = types.Tool(
    name="search",
    description="Search the registry of paid x402 resources (free). Returns ids, URLs, descriptions and prices.",
    input_schema={
        "type": "object",
        "properties": {
            "query": {"type": "string", "maxLength": 256},
            "maxPrice": {"type": "string", "description": "atomic units"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50},
        },
    },
)
DESCRIBE = types.Tool(
    name="describe",
    description="Describe one registry resource by id (free): offers, input and output schemas, signals.",
    input_schema={"type": "object", "properties": {"resource": {"type": "string"}}, "required": ["resource"]},
)
CALL = types.Tool(
    name="call",
    description="Call a registry resource (by id), paying its x402 price from your wallet within its policy; "
    "returns the upstream answer, the payment receipt and the remaining budget.",
    input_schema={
        "type": "object",
        "properties": {"resource": {"type": "string"}, **_REQUEST_PROPS},
        "required": ["resource"],
    },
)


def _price(resource: Resource) -> str:
    offers = [f"{a.get('amount')} of {a.get('asset')} on {a.get('network')}" for a in resource.accepts]
    return "; ".join(offers) or "unknown"


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "id": str(resource.id),
        "url": resource.url,
        "method": resource.method,
        "type": resource.type,
        "description": resource.description,
        "minPrice": str(resource.min_price) if resource.min_price is not None else None,
        "accepts": resource.accepts,
    }


def _resource_tool(resource: Resource) -> types.Tool:
    about = resource.description or resource.url
    return types.Tool(
        name=RESOURCE_TOOL_PREFIX + resource.id.hex,
        description=f"{about} ({resource.method} {resource.url}); price: {_price(resource)} (atomic units)",
        input_schema={"type": "object", "properties": dict(_REQUEST_PROPS)},
        _meta={"x402/accepts": resource.accepts, "x402/resourceId": str(resource.id)},
    )


def _ok(doc: dict[str, Any]) -> types.CallToolResult:
    receipt = (doc.get("payment") or {}).get("receipt") if isinstance(doc.get("payment"), dict) else None
    meta = {PAYMENT_RESPONSE_META: receipt} if isinstance(receipt, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(doc, separators=(",", ":"), default=str))],
        structured_content=doc,
        _meta=meta,
    )


def _error(problem: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(problem, separators=(",", ":"), default=str))],
        structured_content=problem,
        is_error=True,
    )


async def _listed(app: web.Application, query: str, filters: Filters, limit: int) -> list[Resource]:
    with system_scope(CATALOGUE):
        return await app[REGISTRY].search(query, filters, limit, 0)


async def _resource(app: web.Application, raw: Any) -> Resource:
    try:
        resource_id = uuid.UUID(str(raw))
    except ValueError:
        raise NotFound("no such resource", code="resource_not_found") from None
    with system_scope(CATALOGUE):
        found = await app[REGISTRY].get(resource_id)
    if found is None:
        raise NotFound("no such resource", code="resource_not_found")
    return found


async def _search(request: web.Request, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
    query = str(args.get("query") or "").strip()[:256]
    limit = args.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
        raise BadRequest("limit must be an integer from 1 to 50", code="invalid_limit")
    max_price = args.get("maxPrice")
    if max_price is not None and (not isinstance(max_price, str) or not max_price.isdigit()):
        raise BadRequest("maxPrice must be an atomic amount (integer string)", code="invalid_max_price")
    filters = Filters(max_price=int(max_price) if max_price is not None else None)
    found = await _listed(request.app, query, filters, limit)
    return {"resources": [_summary(r) for r in found[:limit]]}


async def _describe(request: web.Request, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
    resource = await _resource(request.app, args.get("resource"))
    return {"id": str(resource.id), **msgspec.to_builtins(resource.to_item())}


async def _wallet(service: WalletService, caller: Caller, raw: Any) -> Wallet:
    if raw is None:
        if caller.agent_wallets is not None and len(caller.agent_wallets) == 1:
            return await wallet_by_id(service, caller, next(iter(caller.agent_wallets)))
        raise BadRequest("walletId is required (the key is not bound to exactly one wallet)", code="wallet_required")
    try:
        wallet_id = uuid.UUID(str(raw))
    except ValueError:
        raise NotFound("no such wallet", code="wallet_not_found") from None
    return await wallet_by_id(service, caller, wallet_id)


def _pay_request(resource: Resource, args: dict[str, Any]) -> PayRequest:
    url = resource.url
    query = args.get("query")
    if query:
        if not isinstance(query, dict) or not all(isinstance(v, str) for v in query.values()):
            raise BadRequest("query must be an object of strings", code="invalid_pay_request")
        url += ("&" if "?" in url else "?") + urlencode(query)
    doc: dict[str, Any] = {"url": url, "method": args.get("method") or resource.method or "GET"}
    for key in ("headers", "body", "maxAmount"):
        if args.get(key) is not None:
            doc[key] = args[key]
    if "maxAmount" not in doc and resource.min_price is not None:
        # never more than the listing asks unless the agent says so
        listed = [int(a["amount"]) for a in resource.accepts if str(a.get("amount", "")).isdigit()]
        doc["maxAmount"] = str(max(listed, default=resource.min_price))
    return PayRequest.from_json(doc)


def _idempotency_key(args: dict[str, Any]) -> str | None:
    key = args.get("idempotencyKey")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 255):
        raise BadRequest("idempotencyKey must be 1-255 characters", code="invalid_idempotency_key")
    return key


async def _call(request: web.Request, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
    service = request.app[WALLETS]
    resource = await _resource(request.app, args.get("resource"))
    if resource.type != "http":
        raise BadRequest("only HTTP resources can be called through the gateway", code="unsupported_resource_type")
    wallet = await _wallet(service, caller, args.get("walletId"))
    if service.payer is None:
        raise ValidationFailed("wallets need a master key (X402_MASTER_KEY)", code="master_key_missing")
    req = _pay_request(resource, args)
    check_http_url(req.url, code="outbound_refused")
    result = await service.payer.pay(wallet, req, _idempotency_key(args))
    return {"resourceId": str(resource.id), **result}


ToolFn = Callable[[web.Request, Caller, dict[str, Any]], Awaitable[dict[str, Any]]]
TOOLS: Final[dict[str, ToolFn]] = {"search": _search, "describe": _describe, "call": _call}


async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    """``tools/list``: search, describe, call, then one tool per listed HTTP resource with its price."""
    request = aiohttp_request(ctx)
    tools = [SEARCH, DESCRIBE, CALL]
    if request is not None:
        listed = await _listed(request.app, "", Filters(type="http"), LISTED_TOOLS)
        tools += [_resource_tool(r) for r in listed[:LISTED_TOOLS]]
    return types.ListToolsResult(tools=tools)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    """``tools/call`` in the caller's tenant scope; errors are tool results carrying the problem ``code``."""
    request = aiohttp_request(ctx)
    if request is None:
        return _error({"status": 500, "code": "no_request", "detail": "the gateway runs behind x402 serve only"})
    args = dict(params.arguments or {})
    name = params.name
    if name.startswith(RESOURCE_TOOL_PREFIX):
        try:
            args["resource"] = str(uuid.UUID(hex=name.removeprefix(RESOURCE_TOOL_PREFIX)))
        except ValueError:
            return _error({"status": 404, "code": "unknown_tool", "detail": f"no tool {name!r}"})
        name = "call"
    fn = TOOLS.get(name)
    if fn is None:
        return _error({"status": 404, "code": "unknown_tool", "detail": f"no tool {name!r}"})
    with scope_of(principal_of(request)):
        try:
            caller = await caller_of(request, request.app[WALLETS])
            return _ok(await fn(request, caller, args))
        except X402Error as exc:
            return _error(exc.to_problem())


async def _guard(request: web.Request) -> None:
    """Refuse before MCP: no key (when keys are required) is 401, a key without the wallets scope 403, a body
    that is not JSON 415 (problem documents; the transport's own refusals are JSON-RPC errors)."""
    with scope_of(principal_of(request)):
        await caller_of(request, request.app[WALLETS])
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            "MCP messages are JSON-RPC: Content-Type: application/json", code="unsupported_media_type"
        )
    check_envelope(jsonlimits.loads(await request.read()))


def check_envelope(doc: Any) -> None:
    """A JSON-RPC 2.0 request or notification (the agent side sends nothing else): 400 ``invalid_jsonrpc``."""
    if not isinstance(doc, dict) or doc.get("jsonrpc") != "2.0":
        raise BadRequest('expected a JSON-RPC 2.0 message object ("jsonrpc": "2.0")', code="invalid_jsonrpc")
    if not isinstance(doc.get("method"), str):
        raise BadRequest("method must be a string", code="invalid_jsonrpc")
    if "id" in doc and (isinstance(doc["id"], bool) or not isinstance(doc["id"], str | int)):
        raise BadRequest("id must be a string or an integer", code="invalid_jsonrpc")
    if "params" in doc and not isinstance(doc["params"], dict):
        raise BadRequest("params must be an object", code="invalid_jsonrpc")


def install(app: web.Application) -> None:
    """Serve the gateway at ``/v1/mcp``."""
    server: Server[Any] = Server(
        "x402-gateway",
        version="1",
        instructions="Search the x402 registry, then call resources; payments come from your budgeted wallet.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    mount(app, server, PATH, guard=_guard)
