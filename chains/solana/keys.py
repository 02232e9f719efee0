"""Solana wallet keys (a ``chains.keys.KeyKind``): ed25519 keypairs, signing through the service's RPC pools."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from solders.keypair import Keypair

from chains.keys import KeyPair
from chains.solana.rpc import SolanaRpcPool
from chains.solana.signer import SvmSigner, payable
from x402.wire.models import PaymentRequirements
from x402.wire.networks import is_solana


class SolanaKeys:
    """Keys of ``solana`` networks; ``rpc`` holds the pools signers fetch the mint and a blockhash from."""

    name = "svm"
    label = "solana"
    aliases: Sequence[str] = ()

    def __init__(self, rpc: Mapping[str, SolanaRpcPool] | None = None) -> None:
        self.rpc = dict(rpc or {})  # long-lived pools: breakers outlive one payment

    def owns(self, network: str) -> bool:
        """Every ``solana`` network."""
        return is_solana(network)

    def generate(self) -> KeyPair:
        """A fresh keypair."""
        kp = Keypair()
        return KeyPair(str(kp.pubkey()), bytes(kp))

    def imported(self, text: str) -> KeyPair:
        """A 64-byte keypair as base58 or as a JSON byte array."""
        stripped = text.strip()
        if stripped.startswith("["):
            kp = Keypair.from_bytes(bytes(json.loads(stripped)))
        else:
            kp = Keypair.from_base58_string(stripped)
        return KeyPair(str(kp.pubkey()), bytes(kp))

    def can_pay(self, offer: PaymentRequirements) -> bool:
        """``exact`` offers on networks with an RPC pool, a fee payer and a memo clients accept."""
        return payable(offer, self.rpc)

    def signer(self, secret: bytes) -> SvmSigner:
        """A signer over the pools (never closed by it)."""
        return SvmSigner(Keypair.from_bytes(secret), self.rpc)
