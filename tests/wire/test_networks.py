"""Network mapping and default-asset tests."""

from __future__ import annotations

import pytest

from x402.errors import BadRequest
from x402.wire import (
    SOLANA_DEVNET,
    SOLANA_MAINNET,
    SOLANA_TESTNET,
    default_asset,
    evm_chain_id,
    find_asset,
    is_evm,
    is_solana,
    matches,
    to_caip2,
    to_v1_name,
)
from x402.wire.assets import DEFAULT_ASSETS, PERMIT2, SPL_TOKEN
from x402.wire.networks import V1_TO_CAIP2


@pytest.mark.parametrize(
    ("name", "caip2"),
    [
        ("base", "eip155:8453"),
        ("base-sepolia", "eip155:84532"),
        ("avalanche-fuji", "eip155:43113"),
        ("polygon-amoy", "eip155:80002"),
        ("skale-base-sepolia", "eip155:324705682"),
        ("ethereum", "eip155:1"),
        ("solana", SOLANA_MAINNET),
        ("solana-devnet", SOLANA_DEVNET),
        ("solana-testnet", SOLANA_TESTNET),
    ],
)
def test_v1_names(name: str, caip2: str) -> None:
    assert to_caip2(name) == caip2
    assert to_v1_name(caip2) == name
    assert to_v1_name(name) == name


def test_all_names_round_trip() -> None:
    assert len(set(V1_TO_CAIP2.values())) == len(V1_TO_CAIP2)
    for name, caip2 in V1_TO_CAIP2.items():
        assert to_caip2(caip2) == caip2
        assert to_v1_name(to_caip2(name)) == name


def test_caip2_passthrough_and_local_chain() -> None:
    assert to_caip2("eip155:31337") == "eip155:31337"
    assert to_v1_name("eip155:31337") is None
    assert to_caip2("solana:localnet") == "solana:localnet"


@pytest.mark.parametrize(
    "bad",
    ["", "basee", "Base", "eip155:", "eip155:0", "eip155:01", "eip155:abc", "eip155:1:2", "eip155:*", "x:1", " base"],
)
def test_unknown_network(bad: str) -> None:
    with pytest.raises(BadRequest) as info:
        to_caip2(bad)
    assert info.value.code == "invalid_network"


def test_families_and_chain_ids() -> None:
    assert is_evm("base")
    assert is_evm("eip155:31337")
    assert not is_evm("solana")
    assert not is_evm("nope")
    assert is_solana("solana-devnet")
    assert is_solana(SOLANA_MAINNET)
    assert not is_solana("eip155:1")
    assert evm_chain_id("base-sepolia") == 84532
    assert evm_chain_id("eip155:31337") == 31337
    for bad in ("solana", "nope"):
        with pytest.raises(BadRequest) as info:
            evm_chain_id(bad)
        assert info.value.code == "invalid_network"


def test_patterns() -> None:
    assert matches("eip155:*", "eip155:8453")
    assert not matches("eip155:*", "eip155:")
    assert not matches("eip155:*", "eip1555:1")
    assert not matches("eip155:*", SOLANA_DEVNET)
    assert matches("solana:*", SOLANA_DEVNET)
    assert matches("*", "anything")
    assert matches("eip155:1", "eip155:1")
    assert not matches("eip155:1", "eip155:10")


def test_default_assets() -> None:
    base = default_asset("eip155:8453")
    assert base is not None
    assert (base.name, base.version, base.decimals) == ("USD Coin", "2", 6)
    sepolia = default_asset("base-sepolia")
    assert sepolia is not None
    assert sepolia.name == "USDC"
    assert sepolia.address == "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    mega = default_asset("eip155:4326")
    assert mega is not None
    assert mega.decimals == 18
    assert mega.transfer_method == PERMIT2
    stable = default_asset("stable")
    assert stable is not None
    assert (stable.symbol, stable.version) == ("USDT0", "1")
    sol = default_asset("solana")
    assert sol is not None
    assert sol.address == "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
    assert sol.transfer_method == SPL_TOKEN
    dev = default_asset(SOLANA_DEVNET)
    assert dev is not None
    assert dev.address == "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
    assert default_asset("eip155:31337") is None
    assert default_asset("not-a-network") is None
    assert all(a.network == key and to_caip2(a.network) == key for key, a in DEFAULT_ASSETS.items())


def test_find_asset() -> None:
    addr = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    assert find_asset("eip155:84532", addr.lower()) == default_asset("base-sepolia")
    assert find_asset("base-sepolia", addr.upper().replace("0X", "0x")) is not None
    assert find_asset("eip155:8453", addr) is None
    assert find_asset("solana-devnet", "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU") is not None
    assert find_asset("solana-devnet", "4zmmc9srt5ri5x14gagxhahii3gnpaeeryPJgZJDncDU") is None
    assert find_asset("nope", addr) is None
