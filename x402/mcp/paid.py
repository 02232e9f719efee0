"""Paid MCP tools on the official ``mcp`` SDK, following the x402 MCP transport (``specs/transports-v2/mcp.md``).

An unpaid call answers a tool result with ``isError: true`` whose ``structuredContent`` is the ``PaymentRequired``
object and whose ``content[0].text`` is the same JSON; ``resource.url`` is ``mcp://tool/<name>``. The retry carries
the ``PaymentPayload`` in ``params._meta["x402/payment"]``: it is matched to one of the tool's offers, verified,
the tool runs, then the payment is settled and the result carries ``_meta["x402/payment-response"]``. A failed
settlement answers the payment error without the tool's output. Verify and settle go through any ``Facilitator``
(in process or remote).

Use ``PaidTools`` as the ``on_list_tools`` / ``on_call_tool`` handlers of a low-level ``mcp.server.Server``, or
``charge`` inside a handler of your own.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from mcp import types

from x402.errors import X402Error
from x402.facilitator.base import Facilitator
from x402.logs import get_logger
from x402.paywall.matching import requirements_match
from x402.paywall.offers import Offer
from x402.wire.models import PaymentPayload, PaymentRequired, ResourceInfo, SettleResponse

log = get_logger("x402.mcp")

PAYMENT_META = "x402/payment"
PAYMENT_RESPONSE_META = "x402/payment-response"
PAYMENT_REQUIRED_ERROR = "Payment required to access this resource"

#: A tool body: the call's arguments in, the tool result out.
ToolHandler = Callable[[dict[str, Any]], Awaitable[types.CallToolResult]]


def tool_resource_url(name: str) -> str:
    """The resource URL of an MCP tool in x402 challenges."""
    return f"mcp://tool/{name}"


def bazaar_declaration(
    tool: types.Tool, *, example: Mapping[str, Any] | None = None, output_example: Any = None
) -> dict[str, Any]:
    """The ``bazaar`` extension of a paid tool: ``info.input = {type: "mcp", toolName, inputSchema, …}``.

    ``toolName`` is the current spelling (x402-spec §12.1, §12.5; the official SDK's bazaar facilitator requires
    it); registries key MCP listings by (``resource.url``, ``input.toolName``).
    """
    inp: dict[str, Any] = {
        "type": "mcp",
        "toolName": tool.name,
        "inputSchema": dict(tool.input_schema),
        "transport": "streamable-http",
    }
    if tool.description:
        inp["description"] = tool.description
    if example is not None:
        inp["example"] = dict(example)
    info: dict[str, Any] = {"input": inp}
    if output_example is not None:
        info["output"] = {"type": "json", "example": output_example}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "input": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "const": "mcp"},
                    "toolName": {"type": "string"},
                    "description": {"type": "string"},
                    "transport": {"type": "string", "enum": ["streamable-http", "sse"]},
                    "inputSchema": {"type": "object"},
                    "example": {"type": "object"},
                },
                "required": ["type", "toolName", "inputSchema"],
                "additionalProperties": False,
            },
            "output": {"type": "object", "properties": {"type": {"type": "string"}}, "required": ["type"]},
        },
        "required": ["input"],
    }
    return {"info": info, "schema": schema}


def payment_required_result(
    required: PaymentRequired, error: str, *, receipt: SettleResponse | None = None
) -> types.CallToolResult:
    """The transport's payment error: ``isError``, the object as structured content and as JSON text."""
    doc = msgspec.to_builtins(msgspec.structs.replace(required, error=error))
    meta = {PAYMENT_RESPONSE_META: msgspec.to_builtins(receipt)} if receipt is not None else None
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(doc, separators=(",", ":")))],
        structured_content=doc,
        is_error=True,
        _meta=meta,
    )


def _without_nulls(value: Any) -> Any:
    """Drop ``null`` members (the official Python client sends unset optional fields as ``null``)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _payload_of(meta: Mapping[str, Any] | None) -> PaymentPayload | str | None:
    """The payment in ``_meta`` (None: unpaid; a string: why it cannot be read)."""
    raw = (meta or {}).get(PAYMENT_META)
    if raw is None:
        return None
    try:
        return msgspec.convert(_without_nulls(raw), PaymentPayload)
    except msgspec.ValidationError as exc:
        return f"invalid x402/payment: {exc}"


async def charge(
    facilitator: Facilitator,
    required: PaymentRequired,
    meta: Mapping[str, Any] | None,
    run: Callable[[], Awaitable[types.CallToolResult]],
) -> types.CallToolResult:
    """Run ``run`` only for a payment in ``meta`` that matches an offer and verifies; settle after it succeeded."""
    payload = _payload_of(meta)
    if payload is None:
        return payment_required_result(required, PAYMENT_REQUIRED_ERROR)
    if isinstance(payload, str):
        return payment_required_result(required, payload)
    ours = next((r for r in required.accepts if requirements_match(r, payload.accepted)), None)
    if ours is None:
        return payment_required_result(required, "the payment's accepted requirements match no offer of this tool")
    try:
        verdict = await facilitator.verify(payload, ours)
    except X402Error as exc:
        log.warning("mcp_verify_failed", code=exc.code, detail=exc.detail)
        return payment_required_result(required, f"facilitator error: {exc.code}")
    if not verdict.is_valid:
        return payment_required_result(required, f"payment invalid: {verdict.invalid_reason or 'unknown'}")
    result = await run()
    if result.is_error:
        return result  # the tool failed: nothing delivered, nothing settled
    try:
        receipt = await facilitator.settle(payload, ours)
    except X402Error as exc:
        log.warning("mcp_settle_failed", code=exc.code, detail=exc.detail)
        return payment_required_result(required, f"Settlement failed: {exc.code}")
    if not receipt.success:
        return payment_required_result(
            required, f"Settlement failed: {receipt.error_reason or 'unknown'}", receipt=receipt
        )
    meta_out = dict(result.meta or {})
    meta_out[PAYMENT_RESPONSE_META] = msgspec.to_builtins(receipt)
    return result.model_copy(update={"meta": meta_out})


@dataclass(frozen=True, slots=True)
class _Entry:
    tool: types.Tool
    handler: ToolHandler
    required: PaymentRequired | None


@dataclass
class PaidTools:
    """A tool table for a low-level ``mcp.server.Server``: free and paid tools, one handler each.

    ``Server("name", on_list_tools=tools.list_tools, on_call_tool=tools.call_tool)``.
    """

    facilitator: Facilitator
    _tools: dict[str, _Entry] = field(default_factory=dict)

    def add(
        self,
        tool: types.Tool,
        handler: ToolHandler,
        offers: Sequence[Offer] = (),
        *,
        example: Mapping[str, Any] | None = None,
        output_example: Any = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        """Register ``tool``; with ``offers`` every call must pay one of them (any one, the client picks)."""
        required = None
        if offers:
            ext = {"bazaar": bazaar_declaration(tool, example=example, output_example=output_example)}
            ext.update(extensions or {})
            required = PaymentRequired(
                error=PAYMENT_REQUIRED_ERROR,
                resource=ResourceInfo(
                    url=tool_resource_url(tool.name),
                    description=tool.description or tool.name,
                    mime_type="application/json",
                ),
                accepts=[o.requirements() for o in offers],
                extensions=ext,
            )
        self._tools[tool.name] = _Entry(tool, handler, required)

    def payment_required(self, name: str) -> PaymentRequired | None:
        """The challenge of a paid tool (None: free or unknown)."""
        entry = self._tools.get(name)
        return entry.required if entry else None

    async def list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        """``tools/list``: every tool; a paid tool's price is in its ``_meta["x402/payment-required"]``."""
        out = []
        for entry in self._tools.values():
            tool = entry.tool
            if entry.required is not None:
                meta = dict(tool.meta or {})
                meta["x402/payment-required"] = msgspec.to_builtins(entry.required)
                tool = tool.model_copy(update={"meta": meta})
            out.append(tool)
        return types.ListToolsResult(tools=out)

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        """``tools/call``: free tools run; paid tools go through ``charge``."""
        entry = self._tools.get(params.name)
        if entry is None:
            return types.CallToolResult(
                content=[types.TextContent(text=f"unknown tool {params.name!r}")], is_error=True
            )
        args = dict(params.arguments or {})
        if entry.required is None:
            return await entry.handler(args)
        meta: Mapping[str, Any] | None = params.meta if params.meta is not None else getattr(ctx, "meta", None)
        return await charge(self.facilitator, entry.required, meta, lambda: entry.handler(args))
