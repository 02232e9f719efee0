"""On-chain balances of a wallet: each configured asset through its chain adapter's ``balance_of``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from chains.config import NetworkConfig
from chains.registry import ChainRegistry
from x402.errors import ValidationFailed


@runtime_checkable
class BalanceReader(Protocol):
    """A chain adapter that can read a token balance (the EVM and Solana adapters)."""

    async def balance_of(self, network: str, asset: str, owner: str) -> int:
        """``owner``'s balance of ``asset`` on ``network`` in atomic units."""
        ...


async def balance_of(registry: ChainRegistry, network: str, asset: str, owner: str) -> int:
    """``owner``'s balance of ``asset`` on ``network`` through the network's adapter (its RPC failover)."""
    adapter = registry.find(network)
    if not isinstance(adapter, BalanceReader):
        raise ValidationFailed(f"network {network} is not configured on this service", code="network_not_configured")
    return await adapter.balance_of(network, asset, owner)


async def balances(
    registry: ChainRegistry, networks: Iterable[NetworkConfig], address_on: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    """The wallet's balance of every configured asset on the networks it has an address on (``address_on``)."""
    out: list[dict[str, Any]] = []
    for net in networks:
        owner = address_on(net.network)
        if owner is None:
            continue
        for asset in net.assets:
            amount = await balance_of(registry, net.network, asset.address, owner)
            out.append(
                {
                    "network": net.network,
                    "asset": asset.address,
                    "symbol": asset.symbol or asset.name,
                    "decimals": asset.decimals,
                    "balance": str(amount),
                }
            )
    return out
