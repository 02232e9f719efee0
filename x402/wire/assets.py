"""Default stablecoins per network (x402-spec §3.3): the tokens "$0.01" prices are converted into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from x402.errors import BadRequest
from x402.wire.networks import SOLANA_DEVNET, SOLANA_MAINNET, SOLANA_TESTNET, to_caip2

EIP3009: Final = "eip3009"
PERMIT2: Final = "permit2"
SPL_TOKEN: Final = "spl-token"  # noqa: S105 - a token (asset) name, not a credential


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """A token on one network; ``name``/``version`` are the EIP-712 domain (empty for Solana)."""

    network: str
    symbol: str
    address: str
    name: str
    version: str
    decimals: int
    transfer_method: str = EIP3009


def _evm(
    chain_id: int,
    symbol: str,
    address: str,
    name: str,
    version: str = "2",
    decimals: int = 6,
    transfer_method: str = EIP3009,
) -> AssetInfo:
    return AssetInfo(f"eip155:{chain_id}", symbol, address, name, version, decimals, transfer_method)


def _svm(network: str, address: str) -> AssetInfo:
    return AssetInfo(network, "USDC", address, "", "", 6, SPL_TOKEN)


DEFAULT_ASSETS: Final[dict[str, AssetInfo]] = {
    a.network: a
    for a in (
        _evm(8453, "USDC", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin"),
        _evm(84532, "USDC", "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC"),
        _evm(1, "USDC", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USD Coin"),
        _evm(43114, "USDC", "0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E", "USD Coin"),
        _evm(137, "USDC", "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", "USD Coin"),
        _evm(42161, "USDC", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831", "USD Coin"),
        _evm(421614, "USDC", "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d", "USD Coin"),
        # The SDK code says "USDC" (the docs table says "USD Coin"); the code is what clients sign with.
        _evm(143, "USDC", "0x754704Bc059F8C67012fEd69BC8A327a5aafb603", "USDC"),
        _evm(10143, "USDC", "0x534b2f3A21130d7a60830c2Df862319e593943A3", "USDC"),
        _evm(1329, "USDC", "0xe15fC38F6D8c56aF07bbCBe3BAf5708A2Bf42392", "USDC"),
        _evm(1328, "USDC", "0x4fCF1784B31630811181f670Aea7A7bEF803eaED", "USDC"),
        _evm(988, "USDT0", "0x779Ded0c9e1022225f8E0630b35a9b54bE713736", "USDT0", "1"),
        _evm(2201, "USDT0", "0x78Cf24370174180738C5B8E352B6D14c83a6c9A9", "USDT0", "1"),
        _evm(42220, "USDC", "0xcebA9300f2b948710d2653dD7B07f33A8B32118C", "USDC"),
        _evm(4326, "MegaUSD", "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7", "MegaUSD", "1", 18, PERMIT2),
        # Legacy v1 (x402@1.2.0) entries; legacy stored no version (Circle FiatToken v2 answers "2").
        _evm(43113, "USDC", "0x5425890298aed601595a70AB815c96711a31Bc65", "USD Coin"),
        _evm(80002, "USDC", "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582", "USDC"),
        _svm(SOLANA_MAINNET, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"),
        _svm(SOLANA_DEVNET, "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"),
        _svm(SOLANA_TESTNET, "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"),
    )
}


def _caip2(network: str) -> str | None:
    try:
        return to_caip2(network)
    except BadRequest:
        return None


def default_asset(network: str) -> AssetInfo | None:
    """The default stablecoin of a network (v1 name or CAIP-2), or None."""
    caip2 = _caip2(network)
    return None if caip2 is None else DEFAULT_ASSETS.get(caip2)


def find_asset(network: str, address: str) -> AssetInfo | None:
    """The known asset at ``address`` on ``network`` (EVM addresses compared case-insensitively), or None."""
    asset = default_asset(network)
    if asset is None:
        return None
    if asset.network.startswith("eip155:"):
        return asset if asset.address.lower() == address.lower() else None
    return asset if asset.address == address else None
