"""Network presets: friendly names for the chains we know, mapped to CAIP-2 ids."""

from __future__ import annotations

PRESETS: dict[str, str] = {
    "base": "eip155:8453",
    "base-sepolia": "eip155:84532",
    "ethereum": "eip155:1",
    "polygon": "eip155:137",
    "arbitrum": "eip155:42161",
    "optimism": "eip155:10",
    "avalanche": "eip155:43114",
    "solana": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
    "solana-devnet": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
    "solana-testnet": "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z",
    "dev": "eip155:31337",
}


def apply_preset(key: str) -> str:
    """A CAIP-2 id for a preset name, or the key itself when it already is one."""
    return PRESETS.get(key, key)
