"""A Solana ``exact`` payment signer for a wallet key (builds the transaction via ``chains.solana.payer``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from solders.keypair import Keypair

from chains.solana.payer import create_payment
from x402.errors import PaymentRefused
from x402.wire.models import PaymentRequirements
from x402.wire.networks import is_solana


class SvmSigner:
    """Pays ``exact`` SVM offers; needs the network's RPC URL to read the mint and a blockhash."""

    networks: Sequence[str] = ("solana:*",)

    def __init__(self, keypair: Keypair, rpc_urls: Mapping[str, str] | None = None) -> None:
        self._keypair = keypair
        self.rpc_urls = dict(rpc_urls or {})

    def __repr__(self) -> str:
        return f"SvmSigner({self._keypair.pubkey()})"

    @property
    def address(self) -> str:
        """The payer's base58 public key."""
        return str(self._keypair.pubkey())

    def can_pay(self, requirements: PaymentRequirements) -> bool:
        """An ``exact`` offer on a configured Solana network with a fee payer."""
        return (
            requirements.scheme == "exact"
            and is_solana(requirements.network)
            and requirements.network in self.rpc_urls
            and isinstance(requirements.extra.get("feePayer"), str)
        )

    async def create_payload(self, requirements: PaymentRequirements, x402_version: int) -> dict[str, Any]:
        """``{transaction}`` partially signed by the wallet key."""
        url = self.rpc_urls.get(requirements.network)
        if url is None:
            raise PaymentRefused(f"no RPC URL configured for {requirements.network}", code="network_not_configured")
        return dict(await create_payment(url, self._keypair, requirements))
