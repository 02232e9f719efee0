"""Network presets: the friendly names a networks file may use instead of CAIP-2 ids (the one table)."""

from __future__ import annotations

from typing import Final

from x402.wire.networks import SOLANA_DEVNET, SOLANA_MAINNET, SOLANA_TESTNET

#: Name -> CAIP-2 id. A preset's USDC comes from ``x402.wire.assets`` or ``chains.evm.presets.EXTRA_ASSETS``.
PRESETS: Final[dict[str, str]] = {
    "base": "eip155:8453",
    "base-sepolia": "eip155:84532",
    "ethereum": "eip155:1",
    "polygon": "eip155:137",
    "arbitrum": "eip155:42161",
    "optimism": "eip155:10",
    "avalanche": "eip155:43114",
    "solana": SOLANA_MAINNET,
    "solana-devnet": SOLANA_DEVNET,
    "solana-testnet": SOLANA_TESTNET,
    "dev": "eip155:31337",
}


def apply_preset(key: str) -> str:
    """A CAIP-2 id for a preset name, or the key itself when it already is one."""
    return PRESETS.get(key, key)
