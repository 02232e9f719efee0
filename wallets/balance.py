"""On-chain balances of a wallet: each configured asset through its chain adapter's ``balance_of``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from chains.config import NetworkConfig
from chains.registry import ChainRegistry
from x402.errors import ValidationFailed
from x402.wire.networks import is_evm, is_solana


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
    registry: ChainRegistry, networks: Iterable[NetworkConfig], evm_address: str | None, svm_address: str | None = None
) -> list[dict[str, Any]]:
    """The wallet's balance of every configured asset on the chains it has an address for."""
    out: list[dict[str, Any]] = []
    for net in networks:
        owner = evm_address if is_evm(net.network) else svm_address if is_solana(net.network) else None
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
