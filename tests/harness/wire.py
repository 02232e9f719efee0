"""Well-formed x402 documents for tests that need no chain: a Base USDC requirement nobody configured."""

from __future__ import annotations

from typing import Any

UNCONFIGURED_REQUIREMENTS: dict[str, Any] = {
    "scheme": "exact",
    "network": "eip155:8453",
    "amount": "10000",
    "asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "maxTimeoutSeconds": 60,
    "extra": {"name": "USD Coin", "version": "2"},
}
