"""On-chain balances of a wallet: ERC-20 ``balanceOf`` via the EVM adapter's RPC pool (eth_call)."""

from __future__ import annotations

from typing import Any

from chains.registry import ChainRegistry
from x402.errors import ValidationFailed
from x402.settings import Settings
from x402.wire.networks import is_evm

_BALANCE_OF = "0x70a08231"


async def evm_balance(registry: ChainRegistry, network: str, asset: str, owner: str) -> int:
    """``asset.balanceOf(owner)`` on ``network`` through the configured RPC URLs (with failover)."""
    adapter = registry.find(network)
    pool_of = getattr(adapter, "pool", None)
    if adapter is None or pool_of is None:
        raise ValidationFailed(f"network {network} is not configured on this service", code="network_not_configured")
    data = _BALANCE_OF + "00" * 12 + owner.lower().removeprefix("0x")
    out = await pool_of(network).call("eth_call", [{"to": asset, "data": data}, "latest"])
    return int(out, 16) if isinstance(out, str) and out not in ("0x", "") else 0


async def balances(registry: ChainRegistry, settings: Settings, evm_address: str | None) -> list[dict[str, Any]]:
    """The wallet's balance of every configured EVM asset."""
    out: list[dict[str, Any]] = []
    if evm_address is None:
        return out
    for net in settings.networks:
        if not is_evm(net.network):
            continue
        for asset in net.assets:
            amount = await evm_balance(registry, net.network, asset.address, evm_address)
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
