"""Solana fixtures: a LiteSVM JSON-RPC shim per test, a fee payer, a USDC-like mint and a funded payer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from chains.base import PaymentContext
from chains.config import NetworkConfig
from chains.solana.adapter import SolanaAdapter
from tests.chains.svm_rpc import SvmRpc
from x402.wire.models import PaymentRequirements
from x402.wire.networks import SOLANA_DEVNET

NETWORK = SOLANA_DEVNET
START_BALANCE = 100_000_000  # 100 "USDC"
PRICE = 10_000  # $0.01


@dataclass
class World:
    """Everything a Solana test needs: the chain, keys, mint and the adapter under test."""

    rpc: SvmRpc
    adapter: SolanaAdapter
    fee_payer: Keypair
    payer: Keypair
    pay_to: Keypair
    mint_authority: Keypair
    mint: Pubkey
    program: Pubkey

    def requirements(self, **changes: Any) -> PaymentRequirements:
        """Requirements for PRICE of the mint to pay_to, with our fee payer."""
        extra = changes.pop("extra", {"feePayer": str(self.fee_payer.pubkey())})
        base: dict[str, Any] = {
            "scheme": "exact",
            "network": NETWORK,
            "amount": str(PRICE),
            "asset": str(self.mint),
            "pay_to": str(self.pay_to.pubkey()),
            "max_timeout_seconds": 60,
            "extra": extra,
        }
        base.update(changes)
        return PaymentRequirements(**base)

    def ctx(self, payload: dict[str, Any], reqs: PaymentRequirements | None = None) -> PaymentContext:
        """A v2 payment context for ``payload`` against ``reqs`` (default requirements)."""
        reqs = reqs or self.requirements()
        return PaymentContext(2, "exact", reqs.network, payload, reqs, accepted=reqs)

    def ata(self, owner: Pubkey) -> Pubkey:
        """``owner``'s ATA for the mint."""
        return get_associated_token_address(owner, self.mint, self.program)


async def make_world(program: Pubkey) -> World:
    """Start a shim and set up a mint of ``program`` with a funded payer and payTo's ATA."""
    rpc = SvmRpc()
    url = await rpc.start()
    fee_payer, payer, pay_to, authority = Keypair(), Keypair(), Keypair(), Keypair()
    rpc.airdrop(fee_payer.pubkey())
    rpc.airdrop(payer.pubkey())
    mint = rpc.create_mint(authority, 6, program)
    src = rpc.create_ata(payer.pubkey(), mint, program)
    rpc.create_ata(pay_to.pubkey(), mint, program)
    rpc.mint_to(mint, src, START_BALANCE, authority, program)
    adapter = SolanaAdapter(
        [NetworkConfig(network=NETWORK, rpc_urls=(url,))], [fee_payer], rpc_timeout=5.0, poll_interval=0.02
    )
    return World(rpc, adapter, fee_payer, payer, pay_to, authority, mint, program)


@contextlib.asynccontextmanager
async def running_world(token_program: Pubkey) -> AsyncIterator[World]:
    """A fresh chain with a mint of ``token_program``, stopped afterwards."""
    w = await make_world(token_program)
    try:
        yield w
    finally:
        await w.adapter.close()
        await w.rpc.stop()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """A fresh chain with an SPL Token USDC-like mint (6 decimals)."""
    async with running_world(TOKEN_PROGRAM_ID) as w:
        yield w


@pytest.fixture
async def world2022() -> AsyncIterator[World]:
    """A fresh chain with a Token-2022 mint (6 decimals)."""
    async with running_world(TOKEN_2022_PROGRAM_ID) as w:
        yield w
