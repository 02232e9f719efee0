"""x402 over MCP (``specs/transports-v2/mcp.md``): paid tools on the official ``mcp`` SDK, and a payer for them.

Built on the official ``mcp`` SDK (a dependency of this package).
"""

from x402.mcp.client import McpPayer, PaidToolResult, payment_required_of, receipt_of
from x402.mcp.paid import (
    PAYMENT_META,
    PAYMENT_RESPONSE_META,
    PaidTools,
    bazaar_declaration,
    charge,
    payment_required_result,
    tool_resource_url,
)

__all__ = [
    "PAYMENT_META",
    "PAYMENT_RESPONSE_META",
    "McpPayer",
    "PaidToolResult",
    "PaidTools",
    "bazaar_declaration",
    "charge",
    "payment_required_of",
    "payment_required_result",
    "receipt_of",
    "tool_resource_url",
]
