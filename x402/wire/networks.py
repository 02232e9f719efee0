"""Network identifiers: v1 names <-> CAIP-2 ids, family tests and wildcard patterns."""

from __future__ import annotations

import re
from typing import Final

from x402.errors import BadRequest

SOLANA_MAINNET: Final = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
SOLANA_DEVNET: Final = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
SOLANA_TESTNET: Final = "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z"

# v1 EVM names -> chain ids: the legacy x402@1.2.0 enum plus the names @x402/evm 2.x and the Python SDK added.
# story/educhain differ between the TS (1514/41923) and Python (1513/656476) SDKs; the TS values are used here.
V1_EVM_CHAIN_IDS: Final[dict[str, int]] = {
    "abstract": 2741,
    "abstract-testnet": 11124,
    "base-sepolia": 84532,
    "base": 8453,
    "avalanche-fuji": 43113,
    "avalanche": 43114,
    "iotex": 4689,
    "sei": 1329,
    "sei-testnet": 1328,
    "polygon": 137,
    "polygon-amoy": 80002,
    "peaq": 3338,
    "story": 1514,
    "educhain": 41923,
    "skale-base-sepolia": 324705682,
    "ethereum": 1,
    "sepolia": 11155111,
    "megaeth": 4326,
    "monad": 143,
    "monad-testnet": 10143,
    "stable": 988,
    "stable-testnet": 2201,
    "celo": 42220,
    "flare": 14,
}

V1_SOLANA_NETWORKS: Final[dict[str, str]] = {
    "solana": SOLANA_MAINNET,
    "solana-devnet": SOLANA_DEVNET,
    "solana-testnet": SOLANA_TESTNET,
}

V1_TO_CAIP2: Final[dict[str, str]] = {
    **{name: f"eip155:{chain_id}" for name, chain_id in V1_EVM_CHAIN_IDS.items()},
    **V1_SOLANA_NETWORKS,
}
CAIP2_TO_V1: Final[dict[str, str]] = {caip2: name for name, caip2 in V1_TO_CAIP2.items()}

_CAIP2 = re.compile(r"(?P<ns>[-a-z0-9]{3,8}):(?P<ref>[-_a-zA-Z0-9]{1,32})")
_EIP155_REF = re.compile(r"[1-9][0-9]{0,19}")


def _invalid(network: object) -> BadRequest:
    return BadRequest(f"unknown network {network!r}", code="invalid_network")


def to_caip2(network: str) -> str:
    """The CAIP-2 id of a v1 network name or of a (validated) CAIP-2 id; raises ``invalid_network``."""
    known = V1_TO_CAIP2.get(network)
    if known is not None:
        return known
    m = _CAIP2.fullmatch(network) if isinstance(network, str) else None
    if m is None:
        raise _invalid(network)
    if m["ns"] == "eip155" and _EIP155_REF.fullmatch(m["ref"]) is None:
        raise _invalid(network)
    return network


def to_v1_name(network: str) -> str | None:
    """The v1 name of a CAIP-2 id (or of a v1 name itself), or None when v1 has no name for it."""
    if network in V1_TO_CAIP2:
        return network
    return CAIP2_TO_V1.get(network)


def _try_caip2(network: str) -> str | None:
    try:
        return to_caip2(network)
    except BadRequest:
        return None


def is_evm(network: str) -> bool:
    """True for an EVM network (``eip155:<id>`` or an EVM v1 name)."""
    caip2 = _try_caip2(network)
    return caip2 is not None and caip2.startswith("eip155:")


def is_solana(network: str) -> bool:
    """True for a Solana network (``solana:<genesis>`` or a Solana v1 name)."""
    caip2 = _try_caip2(network)
    return caip2 is not None and caip2.startswith("solana:")


def evm_chain_id(network: str) -> int:
    """The EVM chain id of a network; raises ``invalid_network`` for anything that is not EVM."""
    caip2 = to_caip2(network)
    if not caip2.startswith("eip155:"):
        raise BadRequest(f"not an EVM network: {network!r}", code="invalid_network")
    return int(caip2[7:])


def matches(pattern: str, network: str) -> bool:
    """True when ``network`` matches ``pattern``: an exact id, ``<namespace>:*`` or ``*``."""
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        return network.startswith(pattern[:-1]) and len(network) > len(pattern) - 1
    return pattern == network
