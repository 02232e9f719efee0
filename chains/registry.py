"""Chain adapters by CAIP-2 pattern (exact ids beat wildcards) and the ``x402.chains`` entry-point group."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from chains.base import ChainAdapter, DeclaresExtensions
from x402.errors import BadRequest
from x402.wire.models import SupportedResponse
from x402.wire.networks import matches

if TYPE_CHECKING:
    from chains.config import ChainOptions, NetworkConfig

ENTRY_POINT_GROUP = "x402.chains"

#: An entry point loads a factory: (chain options, networks of its family) -> adapter or None.
AdapterFactory = Callable[["ChainOptions", "list[NetworkConfig]"], "ChainAdapter | None"]


class UnsupportedNetwork(BadRequest):
    code = "invalid_network"
    title = "Unsupported network"


class ChainRegistry:
    """Finds the adapter for a network; exact registrations win over wildcard ones."""

    def __init__(self) -> None:
        self._exact: dict[str, ChainAdapter] = {}
        self._wild: list[tuple[str, ChainAdapter]] = []
        self._all: list[ChainAdapter] = []

    def register(self, pattern: str, adapter: ChainAdapter) -> None:
        """Serve ``pattern`` (``eip155:8453`` or ``eip155:*``) with ``adapter``."""
        if pattern.endswith(":*"):
            self._wild.append((pattern, adapter))
        else:
            self._exact[pattern] = adapter
        if adapter not in self._all:
            self._all.append(adapter)

    def find(self, network: str) -> ChainAdapter | None:
        """The adapter serving ``network``, or None."""
        hit = self._exact.get(network)
        if hit is not None:
            return hit
        for pattern, adapter in self._wild:
            if matches(pattern, network) and network in adapter.networks():
                return adapter
        return None

    def get(self, network: str) -> ChainAdapter:
        """The adapter serving ``network``; raises 400 ``invalid_network`` when none does."""
        adapter = self.find(network)
        if adapter is None:
            raise UnsupportedNetwork(f"network {network!r} is not configured on this facilitator")
        return adapter

    def __iter__(self) -> Iterator[ChainAdapter]:
        return iter(self._all)

    def networks(self) -> list[str]:
        """Every configured network, in registration order."""
        out: list[str] = []
        for adapter in self._all:
            out.extend(n for n in adapter.networks() if n not in out)
        return out

    def supported(self, extensions: list[str] | None = None) -> SupportedResponse:
        """``GET /supported``: the kinds and signers of every adapter (architecture.md §6.2)."""
        kinds = []
        signers: dict[str, list[str]] = {}
        keys = list(extensions or [])
        for adapter in self._all:
            kinds.extend(adapter.supported_kinds())
            for pattern, addrs in adapter.signers().items():
                have = signers.setdefault(pattern, [])
                have.extend(a for a in addrs if a not in have)
            if isinstance(adapter, DeclaresExtensions):  # e.g. EVM: eip2612GasSponsoring
                keys.extend(k for k in adapter.extension_keys() if k not in keys)
        return SupportedResponse(kinds=kinds, extensions=keys, signers=signers)

    async def close(self) -> None:
        """Close every adapter."""
        for adapter in self._all:
            await adapter.close()


@functools.cache
def load_factories() -> dict[str, AdapterFactory]:
    """Adapter factories from the ``x402.chains`` entry-point group (read once per process: it scans files)."""
    out: dict[str, AdapterFactory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            out[ep.name] = ep.load()
        except (ImportError, AttributeError) as exc:
            logging.getLogger("x402.chains").error("chain plugin %s failed to load: %s", ep.value, exc)
    return out


FAMILY_ALIASES = {"eip155": "evm", "solana": "solana"}


def build_registry(options: ChainOptions, factories: dict[str, AdapterFactory] | None = None) -> ChainRegistry:
    """One adapter per chain family for the configured networks, registered exactly and by wildcard."""
    factories = load_factories() if factories is None else factories
    registry = ChainRegistry()
    by_family: dict[str, list[NetworkConfig]] = {}
    for net in options.networks:
        by_family.setdefault(net.family, []).append(net)
    for family, nets in by_family.items():
        factory = factories.get(FAMILY_ALIASES.get(family, family)) or factories.get(family)
        if factory is None:
            continue
        adapter = factory(options, nets)
        if adapter is None:
            continue
        for net in nets:
            registry.register(net.network, adapter)
        registry.register(f"{family}:*", adapter)
    return registry
