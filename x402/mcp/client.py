"""A payer for paid MCP tools: an ``mcp.ClientSession`` plus the signers and policy of ``X402Client``.

``call_tool`` calls once; when the result is the transport's payment error (``isError`` with a ``PaymentRequired``
in ``structuredContent``, else in ``content[0].text``) it picks an offer within the policy, signs it and calls
once more with the payment in ``_meta["x402/payment"]`` (never a third time). The receipt of
``_meta["x402/payment-response"]`` comes back on the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec
from mcp import ClientSession, types

from x402.client.policy import PaymentPolicy
from x402.client.signer import PaymentSigner
from x402.errors import PaymentRefused
from x402.logs import get_logger
from x402.mcp.paid import PAYMENT_META, PAYMENT_RESPONSE_META
from x402.wire.models import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo, SettleResponse

log = get_logger("x402.mcp.client")


@dataclass(slots=True)
class PaidToolResult:
    """A tool result; ``paid`` is the offer paid (None: free), ``settlement`` the server's receipt."""

    result: types.CallToolResult
    paid: PaymentRequirements | None = None
    settlement: SettleResponse | None = None
    payer: str | None = None
    #: the ``_meta`` of the paying call (it holds the signed payment)
    sent_meta: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """The tool answered without error (and, when paid, with a successful receipt)."""
        if self.result.is_error:
            return False
        return self.paid is None or (self.settlement is not None and self.settlement.success)

    def text(self) -> str:
        """The result's text content, joined."""
        return "".join(c.text for c in self.result.content if isinstance(c, types.TextContent))


def payment_required_of(result: types.CallToolResult) -> PaymentRequired | None:
    """The ``PaymentRequired`` of a payment error result (structured content first, then the text), else None."""
    if not result.is_error:
        return None
    candidates: list[Any] = [result.structured_content]
    if result.content and isinstance(result.content[0], types.TextContent):
        try:
            candidates.append(json.loads(result.content[0].text))
        except ValueError:
            pass
    for doc in candidates:
        if isinstance(doc, dict) and doc.get("x402Version") == 2 and "accepts" in doc:
            try:
                return msgspec.convert(doc, PaymentRequired)
            except msgspec.ValidationError:
                continue
    return None


def receipt_of(result: types.CallToolResult) -> SettleResponse | None:
    """The ``_meta["x402/payment-response"]`` receipt of a result, if any."""
    raw = (result.meta or {}).get(PAYMENT_RESPONSE_META)
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, SettleResponse)
    except msgspec.ValidationError:
        return None


class McpPayer:
    """Calls MCP tools and pays the ones that ask, one payment per call at most."""

    def __init__(
        self, session: ClientSession, signers: list[PaymentSigner], policy: PaymentPolicy | None = None
    ) -> None:
        self.session = session
        self.signers = list(signers)
        self.policy = policy or PaymentPolicy()

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> PaidToolResult:
        """Call ``name``; pay its challenge if it sends one (raises ``PaymentRefused`` when no offer is acceptable)."""
        first = await self.session.call_tool(name, arguments or {})
        required = payment_required_of(first)
        if required is None:
            return PaidToolResult(first)
        choice = self.policy.choose(required.accepts, self.signers)
        if isinstance(choice, list):
            raise PaymentRefused("no acceptable offer: " + "; ".join(choice), refusals=choice)
        index, signer = choice
        offer = required.accepts[index]
        payload = PaymentPayload(accepted=offer, payload=await signer.create_payload(offer, 2))
        if isinstance(required.resource, ResourceInfo):
            payload.resource = required.resource
        if isinstance(required.extensions, dict) and required.extensions:
            payload.extensions = required.extensions
        log.info("paying_tool", tool=name, network=offer.network, amount=offer.amount)
        meta: Any = {PAYMENT_META: msgspec.to_builtins(payload)}
        second = await self.session.call_tool(name, arguments or {}, meta=meta)
        return PaidToolResult(second, offer, receipt_of(second), signer.address, meta)
