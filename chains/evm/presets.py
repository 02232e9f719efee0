"""EVM asset presets: the USDC of well-known chains the wire default table lacks (names: ``chains.presets``)."""

from __future__ import annotations

from typing import Final

from chains.config import AssetConfig, NetworkConfig
from x402.wire.assets import AssetInfo, find_asset

#: Native USDC on chains the official SDKs' default tables lack (addresses from Circle's deployment list).
EXTRA_ASSETS: Final[dict[str, AssetInfo]] = {
    "eip155:10": AssetInfo("eip155:10", "USDC", "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85", "USD Coin", "2", 6),
}


def known_asset(net: NetworkConfig, address: str) -> AssetConfig | AssetInfo | None:
    """The accepted asset at ``address`` on ``net``: configured first, then the default and preset tables."""
    low = address.lower()
    for asset in net.assets:
        if asset.address.lower() == low:
            return asset
    hit = find_asset(net.network, address)
    if hit is not None:
        return hit
    extra = EXTRA_ASSETS.get(net.network)
    if extra is not None and extra.address.lower() == low:
        return extra
    return None
