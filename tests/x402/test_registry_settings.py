"""Chain registry (exact beats wildcard, entry points) and settings parsing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from chains.registry import ChainRegistry, build_registry, load_factories
from x402.errors import BadRequest, ConfigError
from x402.settings import NetworkConfig, Settings, load_settings
from x402.wire.models import SupportedKind
from x402.wire.networks import matches


class FakeAdapter:
    """A minimal adapter used only to check routing (the registry never calls chain methods)."""

    def __init__(self, name: str, nets: Sequence[str]) -> None:
        self.name = name
        self._nets = list(nets)

    def networks(self) -> Sequence[str]:
        return self._nets

    def supported_kinds(self) -> list[SupportedKind]:
        return [SupportedKind(x402_version=2, scheme="exact", network=n) for n in self._nets]

    def signers(self) -> dict[str, list[str]]:
        return {"eip155:*": [f"0x{self.name}"]}

    async def close(self) -> None:
        return None


def test_exact_beats_wildcard() -> None:
    reg = ChainRegistry()
    # routing-only doubles: not full ChainAdapters, and the registry never calls their chain methods
    wild: Any = FakeAdapter("wild", ["eip155:1", "eip155:8453"])
    exact: Any = FakeAdapter("exact", ["eip155:8453"])
    reg.register("eip155:*", wild)
    reg.register("eip155:8453", exact)
    assert reg.find("eip155:8453") is exact
    assert reg.find("eip155:1") is wild
    assert reg.find("eip155:10") is None  # a wildcard only serves networks its adapter has
    assert reg.find("solana:abc") is None
    with pytest.raises(BadRequest) as err:
        reg.get("eip155:10")
    assert err.value.code == "invalid_network"
    assert matches("solana:*", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")
    assert not matches("eip155:*", "eip1550:1")
    sup = reg.supported(["bazaar"])
    assert [k.network for k in sup.kinds] == ["eip155:1", "eip155:8453", "eip155:8453"]
    assert sup.signers == {"eip155:*": ["0xwild", "0xexact"]}


def test_entry_point_group_provides_the_evm_adapter() -> None:
    factories = load_factories()
    assert "evm" in factories
    settings = Settings(
        networks=(NetworkConfig("eip155:31337", ("http://127.0.0.1:1",)),), evm_signer_key="0x" + "11" * 32
    )
    reg = build_registry(settings, factories)
    adapter = reg.find("eip155:31337")
    assert adapter is not None
    assert adapter.name == "evm"
    # a third-party factory is picked up by family name
    seen: list[list[str]] = []

    def factory(settings: Settings, nets: list[NetworkConfig]) -> Any:  # the routing-only double above
        seen.append([n.network for n in nets])
        return FakeAdapter("third", [n.network for n in nets])

    settings = Settings(networks=(NetworkConfig("tron:mainnet", ("http://127.0.0.1:1",)),))
    reg = build_registry(settings, {"tron": factory})
    assert seen == [["tron:mainnet"]]
    assert reg.find("tron:mainnet") is not None


def test_settings_from_env_and_networks_file(tmp_path: Path) -> None:
    f = tmp_path / "networks.toml"
    f.write_text(
        """
[networks.base]
rpc_urls = ["https://a.example", "https://b.example"]
[[networks.base.assets]]
address = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
name = "USD Coin"
version = "2"
"""
    )
    s = load_settings(
        {
            "X402_NETWORKS_FILE": str(f),
            "X402_PORT": "9000",
            "X402_EVM_SIGNER_KEY": "0x" + "22" * 32,
            "X402_NETWORKS": '{"eip155:84532": {"rpc_url": "https://c.example"}}',
        }
    )
    assert s.port == 9000
    assert [n.network for n in s.networks] == ["eip155:8453", "eip155:84532"]
    assert s.networks[0].rpc_urls == ("https://a.example", "https://b.example")
    assert s.networks[0].assets[0].name == "USD Coin"
    assert "22" * 32 not in repr(s)
    with pytest.raises(ConfigError):
        load_settings({"X402_PORT": "eighty"})
    with pytest.raises(ConfigError):
        load_settings({"X402_NETWORKS": '{"eip155:1": {"rpc_urls": ["ftp://x"]}}'})
    with pytest.raises(ConfigError):
        load_settings({"X402_NETWORKS_FILE": str(tmp_path / "missing.toml")})
