"""``SolanaAdapter.balance_of``: the owner's associated token account of the mint, read through the RPC pool."""

from __future__ import annotations

from solders.keypair import Keypair

from tests.solana.conftest import NETWORK, START_BALANCE, World


async def test_balance_of_reads_the_owners_token_account(world: World) -> None:
    w = world
    assert await w.adapter.balance_of(NETWORK, str(w.mint), str(w.payer.pubkey())) == START_BALANCE
    assert await w.adapter.balance_of(NETWORK, str(w.mint), str(w.pay_to.pubkey())) == 0  # ATA exists, empty
    assert await w.adapter.balance_of(NETWORK, str(w.mint), str(Keypair().pubkey())) == 0  # no ATA at all
    assert await w.adapter.balance_of(NETWORK, str(Keypair().pubkey()), str(w.payer.pubkey())) == 0  # not a mint


async def test_balance_of_token_2022(world2022: World) -> None:
    w = world2022
    assert await w.adapter.balance_of(NETWORK, str(w.mint), str(w.payer.pubkey())) == START_BALANCE
