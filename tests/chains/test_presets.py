"""One preset table (``chains.presets``): a networks file keyed by preset names gets the CAIP-2 ids."""

from __future__ import annotations

from chains.presets import PRESETS, apply_preset
from x402.service.settings import parse_networks
from x402.wire.networks import SOLANA_DEVNET, is_evm, is_solana


def test_networks_file_keys_resolve_through_the_preset_table() -> None:
    doc = {
        "networks": {
            "solana-devnet": {"rpc_urls": ["http://127.0.0.1:1"]},
            "optimism": {"rpc_urls": ["http://127.0.0.1:2", "http://127.0.0.1:3"]},
            "eip155:31337": {"rpc_urls": ["http://127.0.0.1:4"]},
        }
    }
    nets = {n.network: n.rpc_urls for n in parse_networks(doc, "test")}
    assert nets == {
        SOLANA_DEVNET: ("http://127.0.0.1:1",),
        "eip155:10": ("http://127.0.0.1:2", "http://127.0.0.1:3"),
        "eip155:31337": ("http://127.0.0.1:4",),
    }


def test_every_preset_is_a_known_family() -> None:
    assert all(is_evm(caip2) or is_solana(caip2) for caip2 in PRESETS.values())
    assert apply_preset("dev") == "eip155:31337"
    assert apply_preset("eip155:8453") == "eip155:8453"
