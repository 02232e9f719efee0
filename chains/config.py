"""What chain adapters are configured with: networks, their assets, signer keys and RPC options.

The service builds a ``ChainOptions`` from its settings (``Settings.chain_options``); chains never read the
service settings themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AssetConfig:
    """A token accepted on a network; EIP-712 name/version for EVM tokens."""

    address: str
    name: str = ""
    version: str = ""
    decimals: int = 6
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """One chain the service talks to: CAIP-2 id, RPC URLs in failover order, assets."""

    network: str
    rpc_urls: tuple[str, ...]
    assets: tuple[AssetConfig, ...] = ()
    confirmations: int = 1
    eip6492_factories: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The CAIP-2 namespace, e.g. ``eip155`` or ``solana``."""
        return self.network.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class ChainOptions:
    """Everything adapter factories take: the configured networks, the signing keys and the RPC timeout."""

    networks: tuple[NetworkConfig, ...] = ()
    evm_signer_key: str | None = field(default=None, repr=False)
    evm_signer_keys: tuple[str, ...] = field(default=(), repr=False)
    svm_fee_payer_keys: tuple[str, ...] = field(default=(), repr=False)
    rpc_timeout: float = 5.0
    #: Solana smart-wallet path (off by default): allowlist (empty: the reference defaults) and compute caps.
    svm_smart_wallet: bool = False
    svm_smart_wallet_programs: tuple[str, ...] = ()
    svm_smart_wallet_max_compute_units: int = 0
    svm_smart_wallet_max_price: int = -1
