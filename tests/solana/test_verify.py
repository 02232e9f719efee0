"""Verify exact SVM payments against a LiteSVM-backed RPC: the happy path and one test per reason code."""

from __future__ import annotations

import base64
from typing import Any

from solana.rpc.async_api import AsyncClient
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from chains.base import VerifyOutcome
from chains.config import NetworkConfig
from chains.registry import build_registry
from chains.solana.adapter import FEE_PAYER_IN_ACCOUNTS, SolanaAdapter, parse_keypair
from chains.solana.payer import (
    create_payment,
    encode_payload,
    memo_ix,
    payment_instructions,
    sign_partially,
    transfer_checked_ix,
)
from tests.solana.conftest import PRICE, World
from x402.service.settings import load_settings
from x402.wire import reasons as R


def build(
    w: World, reqs: Any = None, *, fee_payer: Pubkey | None = None, edit: Any = None, memo: str | None = None
) -> dict[str, str]:
    """A payment payload built like the official client, optionally with its instruction list edited."""
    reqs = reqs or w.requirements()
    ixs = payment_instructions(w.payer.pubkey(), reqs, token_program=w.program, decimals=6, memo=memo)
    if edit is not None:
        ixs = edit(ixs)
    bh = w.rpc.svm.latest_blockhash()
    return encode_payload(sign_partially(w.payer, fee_payer or w.fee_payer.pubkey(), ixs, bh))


async def verify(w: World, payload: dict[str, Any], reqs: Any = None, simulate: bool = True) -> VerifyOutcome:
    return await w.adapter.verify(w.ctx(payload, reqs), simulate=simulate)


async def test_happy_path_via_create_payment(world: World) -> None:
    async with AsyncClient(world.rpc.url) as client:
        payload = await create_payment(client, world.payer, world.requirements())
    out = await verify(world, payload)
    assert out.is_valid, out
    assert out.payer == str(world.payer.pubkey())
    assert "simulateTransaction" in world.rpc.calls


async def test_create_payment_with_url_and_memo(world: World) -> None:
    reqs = world.requirements(extra={"feePayer": str(world.fee_payer.pubkey()), "memo": "order-42"})
    payload = await create_payment(world.rpc.url, world.payer, reqs)
    assert (await verify(world, payload, reqs)).is_valid


async def test_token_2022_mint(world2022: World) -> None:
    payload = await create_payment(world2022.rpc.url, world2022.payer, world2022.requirements())
    out = await verify(world2022, payload)
    assert out.is_valid, out


async def test_unsupported_scheme(world: World) -> None:
    reqs = world.requirements(scheme="upto")
    out = await verify(world, build(world), reqs)
    assert out.reason == R.INVALID_EXACT_SVM_UNSUPPORTED_SCHEME


async def test_network_mismatch(world: World) -> None:
    reqs = world.requirements(network="solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")
    out = await verify(world, build(world), reqs)
    assert out.reason == R.INVALID_EXACT_SVM_NETWORK_MISMATCH


async def test_missing_fee_payer(world: World) -> None:
    out = await verify(world, build(world), world.requirements(extra={}))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_MISSING_FEE_PAYER
    assert out.payer is None


async def test_fee_payer_not_ours(world: World) -> None:
    other = Keypair().pubkey()
    reqs = world.requirements(extra={"feePayer": str(other)})
    out = await verify(world, build(world, reqs, fee_payer=other), reqs)
    assert out.reason == R.INVALID_EXACT_SVM_FEE_PAYER_NOT_MANAGED


async def test_undecodable_transaction(world: World) -> None:
    for bad in ({"transaction": "not base64!"}, {"transaction": base64.b64encode(b"\x01abc").decode()}, {}):
        out = await verify(world, bad)
        assert out.reason == R.INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED


async def test_message_fee_payer_differs_from_extra(world: World) -> None:
    out = await verify(world, build(world, fee_payer=Keypair().pubkey()))
    assert out.reason == R.INVALID_EXACT_SVM_FEE_PAYER_MISMATCH


async def test_bad_client_signature(world: World) -> None:
    tx = VersionedTransaction.from_bytes(base64.b64decode(build(world)["transaction"]))
    sigs = list(tx.signatures)
    raw = bytearray(bytes(sigs[1]))
    raw[0] ^= 1
    sigs[1] = Signature.from_bytes(bytes(raw))
    tx.signatures = sigs
    out = await verify(world, encode_payload(tx))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_SIGNATURE_INVALID


async def test_too_few_and_too_many_instructions(world: World) -> None:
    out = await verify(world, build(world, edit=lambda ixs: [ixs[0], ixs[2]]))
    assert out.reason == R.INVALID_EXACT_SVM_LENGTH
    out = await verify(world, build(world, edit=lambda ixs: ixs + [memo_ix(str(i)) for i in range(4)]))
    assert out.reason == R.INVALID_EXACT_SVM_LENGTH


async def test_compute_limit_missing_or_too_high(world: World) -> None:
    out = await verify(world, build(world, edit=lambda ixs: [ixs[1], ixs[1], *ixs[2:]]))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION
    out = await verify(world, build(world, edit=lambda ixs: [set_compute_unit_limit(1_400_000), *ixs[1:]]))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH


async def test_compute_price_missing_or_too_high(world: World) -> None:
    out = await verify(world, build(world, edit=lambda ixs: [ixs[0], ixs[0], *ixs[2:]]))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION
    out = await verify(world, build(world, edit=lambda ixs: [ixs[0], set_compute_unit_price(5_000_001), *ixs[2:]]))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH
    ok = await verify(world, build(world, edit=lambda ixs: [ixs[0], set_compute_unit_price(5_000_000), *ixs[2:]]))
    assert ok.is_valid, ok


async def test_no_transfer_instruction(world: World) -> None:
    signed_memo = Instruction(memo_ix("x").program_id, b"x", [AccountMeta(world.payer.pubkey(), True, False)])
    out = await verify(world, build(world, edit=lambda ixs: [ixs[0], ixs[1], signed_memo, memo_ix("y")]))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION


async def test_fee_payer_as_transfer_authority(world: World) -> None:
    w = world
    fp = w.fee_payer.pubkey()

    def edit(ixs: list[Instruction]) -> list[Instruction]:
        t = transfer_checked_ix(w.program, w.ata(fp), w.mint, w.ata(w.pay_to.pubkey()), fp, PRICE, 6)
        return [ixs[0], ixs[1], t, ixs[3]]

    out = await verify(w, build(w, edit=edit))
    assert out.reason == R.INVALID_EXACT_SVM_TRANSACTION_FEE_PAYER_TRANSFERRING_FUNDS
    assert out.payer == str(fp)


async def test_fee_payer_in_instruction_accounts(world: World) -> None:
    fp = world.fee_payer.pubkey()
    sneaky = Instruction(memo_ix("x").program_id, b"x", [AccountMeta(fp, is_signer=True, is_writable=False)])
    out = await verify(world, build(world, edit=lambda ixs: [*ixs, sneaky]))
    assert out.reason == FEE_PAYER_IN_ACCOUNTS


async def test_wrong_mint(world: World) -> None:
    other = world.rpc.create_mint(world.mint_authority, 6, world.program)
    reqs = world.requirements(asset=str(other))
    out = await verify(world, build(world), reqs)
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH
    assert out.payer == str(world.payer.pubkey())


async def test_wrong_recipient_ata(world: World) -> None:
    stranger = Keypair().pubkey()
    world.rpc.create_ata(stranger, world.mint, world.program)
    out = await verify(world, build(world, world.requirements(pay_to=str(stranger))))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH


async def test_amount_at_least_the_requirement(world: World) -> None:
    """Current spec: the transfer pays at least the amount; less is refused, more is accepted."""
    out = await verify(world, build(world, world.requirements(amount=str(PRICE - 1))))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH
    out = await verify(world, build(world, world.requirements(amount=str(PRICE + 1))))
    assert out.is_valid, out


async def test_unknown_fourth_and_fifth_instruction(world: World) -> None:
    foreign = Instruction(Pubkey.from_string("11111111111111111111111111111111"), b"", [])
    out = await verify(world, build(world, edit=lambda ixs: [*ixs[:3], foreign]))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FOURTH_INSTRUCTION
    out = await verify(world, build(world, edit=lambda ixs: [*ixs, foreign]))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FIFTH_INSTRUCTION


async def test_memo_mismatch_and_count(world: World) -> None:
    reqs = world.requirements(extra={"feePayer": str(world.fee_payer.pubkey()), "memo": "order-42"})
    out = await verify(world, build(world, reqs, memo="order-43"), reqs)
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_MEMO_MISMATCH
    out = await verify(world, build(world, reqs, edit=lambda ixs: [*ixs, memo_ix("order-42")]), reqs)
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_MEMO_COUNT
    out = await verify(world, build(world, reqs), reqs)
    assert out.is_valid, out


async def test_simulation_fails_on_insufficient_balance(world: World) -> None:
    reqs = world.requirements(amount=str(10**12))
    payload = build(world, reqs)
    assert (await verify(world, payload, reqs, simulate=False)).is_valid
    out = await verify(world, payload, reqs)
    assert out.reason == R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED
    assert out.payer == str(world.payer.pubkey())


async def test_simulation_fails_on_expired_blockhash(world: World) -> None:
    payload = build(world)
    world.rpc.svm.expire_blockhash()
    out = await verify(world, payload)
    assert out.reason == R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED


def test_supported_kinds_and_signers(world: World) -> None:
    kinds = world.adapter.supported_kinds()
    fp = str(world.fee_payer.pubkey())
    assert [(k.x402_version, k.network) for k in kinds] == [
        (2, "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"),
        (1, "solana-devnet"),
    ]
    assert all(k.extra == {"feePayer": fp} for k in kinds)
    assert world.adapter.signers() == {"solana:*": [fp]}


async def test_entry_point_factory_and_settings(world: World) -> None:
    key = str(world.fee_payer)  # base58 of the 64-byte secret key
    settings = load_settings({"X402_SVM_FEE_PAYER_KEYS": f" {key} ,{Keypair()}", "X402_DATA_DIR": "/tmp"})
    assert len(settings.svm_fee_payer_keys) == 2
    assert key not in repr(settings)
    settings = settings.with_(networks=(NetworkConfig(world.requirements().network, (world.rpc.url,)),))
    registry = build_registry(settings.chain_options())
    adapter = registry.get(world.requirements().network)
    try:
        assert isinstance(adapter, SolanaAdapter)
        assert adapter.signers()["solana:*"][0] == str(world.fee_payer.pubkey())
        payload = await create_payment(world.rpc.url, world.payer, world.requirements())
        assert (await adapter.verify(world.ctx(payload))).is_valid
    finally:
        await registry.close()
    assert parse_keypair(str(list(bytes(world.fee_payer)))).pubkey() == world.fee_payer.pubkey()
    seed = bytes(world.fee_payer)[:32]
    assert parse_keypair(str(Pubkey.from_bytes(seed))).pubkey() == world.fee_payer.pubkey()
