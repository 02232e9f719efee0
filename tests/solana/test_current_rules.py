"""Solana ``exact``, current rules, on LiteSVM: Lighthouse instructions, the outcome check over inner (CPI)
instructions, lookup tables (resolved, failing closed), version-1 messages, the compute-price cap and the opt-in
smart-wallet path with its post-settlement check.

Two stand-ins, both real programs on the real SVM: the Lighthouse address runs the SPL Memo program's bytes (no
package ships Lighthouse's ELF; the verifier only looks at the program id), and the "smart wallet" is the SPL
Associated Token Account program, whose ``RecoverNested`` instruction moves tokens with a CPI ``TransferChecked``.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, MessageV1, TransactionConfig
from solders.null_signer import NullSigner
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID

from chains.base import VerifyOutcome
from chains.config import NetworkConfig
from chains.registry import build_registry
from chains.solana.adapter import SmartWalletOptions, SolanaAdapter
from chains.solana.payer import (
    LIGHTHOUSE_PROGRAM,
    MEMO_PROGRAM,
    encode_payload,
    memo_ix,
    payment_instructions,
    transfer_checked_ix,
)
from tests.solana.conftest import NETWORK, PRICE, World
from tests.solana.test_settle import settle
from x402.errors import ConfigError
from x402.service.settings import load_settings
from x402.wire import reasons as R

ATA_PROGRAM = ASSOCIATED_TOKEN_PROGRAM_ID


def lighthouse(n: int) -> list[Instruction]:
    """``n`` assertion instructions at the Lighthouse address (accounts-free, like a wallet's balance guard)."""
    return [Instruction(LIGHTHOUSE_PROGRAM, f"assert-{i}".encode(), []) for i in range(n)]


def official(w: World, extra: Sequence[Instruction] = ()) -> list[Instruction]:
    """The official client's four instructions, then ``extra``."""
    return [*payment_instructions(w.payer.pubkey(), w.requirements(), token_program=w.program, decimals=6), *extra]


def partially_signed(w: World, ixs: list[Instruction], signer: Keypair | None = None) -> dict[str, str]:
    return _sign_by(w, ixs, [signer or w.payer])


async def verify(adapter: SolanaAdapter, w: World, payload: dict[str, str]) -> VerifyOutcome:
    return await adapter.verify(w.ctx(payload), simulate=True)


def with_lighthouse(w: World) -> World:
    w.rpc.copy_program(MEMO_PROGRAM, LIGHTHOUSE_PROGRAM)
    return w


# ---------------------------------------------------------------- Lighthouse and the compute-price cap


async def test_one_to_three_lighthouse_instructions_accepted(world: World) -> None:
    w = with_lighthouse(world)
    for n in (1, 2, 3):
        out = await verify(w.adapter, w, partially_signed(w, official(w, lighthouse(n))))
        assert out.is_valid, (n, out)
    _, _, conf = await settle(w, partially_signed(w, official(w, lighthouse(3))))
    assert conf.status == "confirmed", conf


async def test_fourth_lighthouse_instruction_refused(world: World) -> None:
    w = with_lighthouse(world)
    ixs = official(w)[:3] + lighthouse(4)  # 7 instructions: the count is fine, the fourth Lighthouse is not
    out = await verify(w.adapter, w, partially_signed(w, ixs))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SEVENTH_INSTRUCTION
    assert out.message is not None
    assert "fourth Lighthouse" in out.message
    out = await verify(w.adapter, w, partially_signed(w, official(w, lighthouse(4))))  # 8 instructions
    assert out.reason == R.INVALID_EXACT_SVM_LENGTH


async def test_compute_price_cap(world: World) -> None:
    w = world

    def priced(price: int) -> list[Instruction]:
        ixs = official(w)
        ixs[1] = set_compute_unit_price(price)
        return ixs

    assert (await verify(w.adapter, w, partially_signed(w, priced(5_000_000)))).is_valid
    out = await verify(w.adapter, w, partially_signed(w, priced(5_000_001)))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH


# ---------------------------------------------------------------- version-1 messages


def v1_payload(w: World, ixs: list[Instruction], config: TransactionConfig) -> dict[str, str]:
    msg = MessageV1.try_compile(w.fee_payer.pubkey(), ixs, w.rpc.svm.latest_blockhash(), config)
    required = msg.account_keys[: msg.header.num_required_signatures]
    signers = [w.payer if k == w.payer.pubkey() else NullSigner(k) for k in required]
    return encode_payload(VersionedTransaction(msg, signers))


async def test_version_1_transaction_verifies_and_settles(world: World) -> None:
    w = with_lighthouse(world)
    ixs = official(w)[2:] + lighthouse(1)  # transfer first, memo, Lighthouse; budget in message.config
    payload = v1_payload(w, ixs, TransactionConfig(compute_unit_limit=20_000, priority_fee=1))
    assert (await verify(w.adapter, w, payload)).is_valid
    _, _, conf = await settle(w, payload)
    assert conf.status == "confirmed", conf
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE


async def test_version_1_budget_rules(world: World) -> None:
    w = world
    ixs = official(w)[2:]
    out = await verify(w.adapter, w, v1_payload(w, ixs, TransactionConfig(priority_fee=1)))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION
    out = await verify(w.adapter, w, v1_payload(w, ixs, TransactionConfig(compute_unit_limit=200_001)))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH
    cfg = TransactionConfig(compute_unit_limit=20_000, priority_fee=5_000_001)
    out = await verify(w.adapter, w, v1_payload(w, ixs, cfg))
    assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH


async def test_later_message_version_is_unsupported(world: World) -> None:
    w = world
    payload = v1_payload(w, official(w)[2:], TransactionConfig(compute_unit_limit=20_000))
    raw = bytearray(base64.b64decode(payload["transaction"]))
    assert raw[0] == 0x81  # version-1 transactions start with the message
    raw[0] = 0x82
    out = await verify(w.adapter, w, {"transaction": base64.b64encode(bytes(raw)).decode()})
    assert out.reason == R.INVALID_EXACT_SVM_UNSUPPORTED_TRANSACTION_VERSION


# ---------------------------------------------------------------- address lookup tables


def alt_payload(w: World, table: Pubkey, addresses: list[Pubkey]) -> dict[str, str]:
    ixs = official(w)
    msg = MessageV0.try_compile(
        w.fee_payer.pubkey(), ixs, [AddressLookupTableAccount(table, addresses)], w.rpc.svm.latest_blockhash()
    )
    assert msg.address_table_lookups, "the destination should load from the table"
    required = msg.account_keys[: msg.header.num_required_signatures]
    signers = [w.payer if k == w.payer.pubkey() else NullSigner(k) for k in required]
    return encode_payload(VersionedTransaction(msg, signers))


async def test_lookup_table_resolved_through_rpc(world: World) -> None:
    w = world
    addresses = [w.ata(w.pay_to.pubkey()), w.mint]
    table = w.rpc.add_lookup_table(addresses)
    payload = alt_payload(w, table, addresses)
    assert (await verify(w.adapter, w, payload)).is_valid
    assert "getMultipleAccounts" in w.rpc.calls
    _, _, conf = await settle(w, payload)
    assert conf.status == "confirmed", conf
    assert conf.amount == PRICE


async def test_unresolvable_lookup_table_fails_closed(world: World) -> None:
    w = world
    addresses = [w.ata(w.pay_to.pubkey()), w.mint]
    missing = Keypair().pubkey()  # never created
    out = await verify(w.adapter, w, alt_payload(w, missing, addresses))
    assert out.reason == R.SW_ALT_RESOLUTION_FAILED
    assert out.message is not None
    assert "does not exist" in out.message
    short = w.rpc.add_lookup_table(addresses[:1])  # the message asks for index 1, the table has one entry
    out = await verify(w.adapter, w, alt_payload(w, short, addresses))
    assert out.reason == R.SW_ALT_RESOLUTION_FAILED
    not_a_table = w.rpc.add_lookup_table(addresses)
    acc = w.rpc.svm.get_account(not_a_table)
    assert acc is not None
    w.rpc.svm.set_account(not_a_table, type(acc)(acc.lamports, bytes(acc.data), w.program, False, 0))
    out = await verify(w.adapter, w, alt_payload(w, not_a_table, addresses))
    assert out.reason == R.SW_ALT_RESOLUTION_FAILED


# ---------------------------------------------------------------- smart wallets: a CPI transfer


@asynccontextmanager
async def smart(w: World, programs: Sequence[Pubkey] = (ATA_PROGRAM,), **caps: int) -> AsyncIterator[SolanaAdapter]:
    """An adapter on the same chain with the smart-wallet path on and ``programs`` allowed."""
    opts = SmartWalletOptions.from_settings(True, [str(p) for p in programs], **caps)
    adapter = SolanaAdapter(
        [NetworkConfig(network=NETWORK, rpc_urls=(w.rpc.url,))],
        [w.fee_payer],
        poll_interval=0.02,
        smart_wallet=opts,
    )
    try:
        yield adapter
    finally:
        await adapter.close()


def nested_recovery(w: World, amount: int) -> Instruction:
    """payTo's tokens held in a nested ATA (owned by payTo's ATA of another mint), recovered into payTo's ATA.

    The ATA program moves them with a CPI TransferChecked signed by its PDA: the transfer exists only as an inner
    instruction.
    """
    owner_mint = w.rpc.create_mint(w.mint_authority, 6, w.program)
    owner_ata = w.rpc.create_ata(w.pay_to.pubkey(), owner_mint, w.program)
    nested = w.rpc.create_ata(owner_ata, w.mint, w.program)
    if amount:
        w.rpc.mint_to(w.mint, nested, amount, w.mint_authority, w.program)
    metas = [
        AccountMeta(nested, False, True),
        AccountMeta(w.mint, False, False),
        AccountMeta(w.ata(w.pay_to.pubkey()), False, True),
        AccountMeta(owner_ata, False, False),
        AccountMeta(owner_mint, False, False),
        AccountMeta(w.pay_to.pubkey(), True, True),
        AccountMeta(w.program, False, False),
    ]
    return Instruction(ATA_PROGRAM, bytes([2]), metas)


def cpi_payment(w: World, amount: int = PRICE, *, before: Sequence[Instruction] = (), **budget: int) -> dict[str, Any]:
    ixs = [
        set_compute_unit_limit(budget.get("limit", 100_000)),
        set_compute_unit_price(budget.get("price", 1)),
        *before,
        nested_recovery(w, amount),
        memo_ix("cpi"),
    ]
    return partially_signed(w, ixs, signer=w.pay_to)


async def test_cpi_transfer_refused_without_the_setting(world: World) -> None:
    out = await verify(world.adapter, world, cpi_payment(world))
    assert out.reason == R.INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION
    kinds = world.adapter.supported_kinds()
    assert all(isinstance(k.extra, dict) and "features" not in k.extra for k in kinds)


async def test_cpi_transfer_found_in_simulation_and_settled(world: World) -> None:
    w = world
    payload = cpi_payment(w)
    async with smart(w) as adapter:
        extra = adapter.supported_kinds()[0].extra
        assert isinstance(extra, dict)
        assert extra["features"] == {"smartWalletSupported": True}
        out = await verify(adapter, w, payload)
        assert out.is_valid, out
        ctx = w.ctx(payload)
        prepared = await adapter.prepare_settlement(ctx)
        await adapter.broadcast(NETWORK, prepared)
        conf = await adapter.confirm(ctx, NETWORK, prepared.tx_id, timeout=5)
    assert conf.status == "confirmed", conf
    assert conf.amount == PRICE
    assert w.rpc.token_balance(w.ata(w.pay_to.pubkey())) == PRICE


async def test_cpi_transfer_in_json_parsed_form(world: World) -> None:
    world.rpc.parsed_inner = True
    async with smart(world) as adapter:
        out = await verify(adapter, world, cpi_payment(world))
    assert out.is_valid, out


async def test_smart_wallet_program_allowlist(world: World) -> None:
    async with smart(world, programs=[LIGHTHOUSE_PROGRAM]) as adapter:
        out = await verify(adapter, world, cpi_payment(world))
    assert out.reason == R.SW_PROGRAM_NOT_ALLOWED
    assert out.message is not None
    assert str(ATA_PROGRAM) in out.message


async def test_smart_wallet_outcome_rules(world: World) -> None:
    w = world
    top = transfer_checked_ix(
        w.program, w.ata(w.payer.pubkey()), w.mint, w.ata(w.pay_to.pubkey()), w.payer.pubkey(), PRICE, 6
    )
    async with smart(w, programs=[ATA_PROGRAM, w.program]) as adapter:
        out = await verify(adapter, w, cpi_payment(w, PRICE - 1))
        assert out.reason == R.SW_TRANSFER_MISMATCH
        out = await verify(adapter, w, cpi_payment(w, 0))  # nothing nested: RecoverNested moves no tokens
        assert out.reason in {R.SW_TRANSFER_MISMATCH, R.SW_NO_TRANSFER_IN_SIMULATION}
        ixs = [set_compute_unit_limit(100_000), set_compute_unit_price(1), top, nested_recovery(w, PRICE)]
        both = _sign_by(w, ixs, [w.payer, w.pay_to])
        out = await verify(adapter, w, both)
        assert out.reason == R.SW_MULTIPLE_MATCHING_TRANSFERS


def _sign_by(w: World, ixs: list[Instruction], signers: list[Keypair]) -> dict[str, str]:
    msg = MessageV0.try_compile(w.fee_payer.pubkey(), ixs, [], w.rpc.svm.latest_blockhash())
    by_key = {s.pubkey(): s for s in signers}
    required = msg.account_keys[: msg.header.num_required_signatures]
    return encode_payload(VersionedTransaction(msg, [by_key.get(k) or NullSigner(k) for k in required]))


async def test_smart_wallet_compute_caps(world: World) -> None:
    async with smart(world, max_compute_units=150_000, max_price=10) as adapter:
        out = await verify(adapter, world, cpi_payment(world, limit=150_001))
        assert out.reason == R.SW_COMPUTE_UNITS_TOO_HIGH
        out = await verify(adapter, world, cpi_payment(world, price=11))
        assert out.reason == R.SW_PRIORITY_FEE_TOO_HIGH
        assert (await verify(adapter, world, cpi_payment(world, limit=150_000, price=10))).is_valid
    async with smart(world) as adapter:  # the default cap (400 000) is above the static layout's (200 000)
        assert (await verify(adapter, world, cpi_payment(world, limit=400_000))).is_valid
        out = await verify(adapter, world, cpi_payment(world, limit=400_001))
        assert out.reason == R.SW_COMPUTE_UNITS_TOO_HIGH
    static = official(world)
    static[0] = set_compute_unit_limit(300_000)
    async with smart(world) as adapter:  # a static-layout payment keeps the static cap
        out = await verify(adapter, world, partially_signed(world, static))
        assert out.reason == R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH


async def test_post_settlement_check_reads_the_confirmed_transaction(world: World) -> None:
    """Two half payments land: payTo's balance rises by the price, but no single transfer pays it."""
    w = world
    half = transfer_checked_ix(
        w.program, w.ata(w.payer.pubkey()), w.mint, w.ata(w.pay_to.pubkey()), w.payer.pubkey(), PRICE // 2, 6
    )
    tx = VersionedTransaction(
        MessageV0.try_compile(w.fee_payer.pubkey(), [half, half], [], w.rpc.svm.latest_blockhash()),
        [w.fee_payer, w.payer],
    )
    assert w.rpc.execute(tx) is None
    conf = await w.adapter.confirm(w.ctx(encode_payload(tx)), NETWORK, str(tx.signatures[0]), timeout=2)
    assert conf.status == "failed"
    assert conf.reason == R.POST_SETTLEMENT_TRANSFER_NOT_CONFIRMED
    assert conf.amount == PRICE


def test_payee_token_accounts_cover_both_programs(world: World) -> None:
    from chains.solana.outcome import payee_accounts

    atas = payee_accounts(str(world.mint), str(world.pay_to.pubkey()))
    assert get_associated_token_address(world.pay_to.pubkey(), world.mint, world.program) in atas
    assert len(atas) == 2


async def test_smart_wallet_settings_reach_the_adapter(world: World) -> None:
    env = {
        "X402_SVM_FEE_PAYER_KEYS": str(world.fee_payer),
        "X402_DATA_DIR": "/tmp",
        "X402_SVM_SMART_WALLET": "true",
        "X402_SVM_SMART_WALLET_PROGRAMS": f"{ATA_PROGRAM}, {LIGHTHOUSE_PROGRAM}",
        "X402_SVM_SMART_WALLET_MAX_COMPUTE_UNITS": "300000",
        "X402_SVM_SMART_WALLET_MAX_PRICE": "7",
    }
    settings = load_settings(env).with_(networks=(NetworkConfig(NETWORK, (world.rpc.url,)),))
    registry = build_registry(settings.chain_options())
    adapter = registry.get(NETWORK)
    try:
        assert isinstance(adapter, SolanaAdapter)
        opts = adapter.verifier.smart_wallet
        assert opts == SmartWalletOptions(True, frozenset({ATA_PROGRAM, LIGHTHOUSE_PROGRAM}), 300_000, 7)
        assert (await verify(adapter, world, cpi_payment(world))).is_valid
    finally:
        await registry.close()
    assert not load_settings({"X402_DATA_DIR": "/tmp"}).svm_smart_wallet  # off by default
    bad = load_settings({**env, "X402_SVM_SMART_WALLET_PROGRAMS": "not-a-program"})
    with pytest.raises(ConfigError, match="X402_SVM_SMART_WALLET_PROGRAMS"):
        build_registry(bad.with_(networks=(NetworkConfig(NETWORK, (world.rpc.url,)),)).chain_options())


async def test_wrong_decimals_refused_by_the_simulation(world: World) -> None:
    """TransferChecked carries the mint's decimals; the token program (run by the simulation) refuses others."""
    w = world
    ixs = official(w)
    ixs[2] = transfer_checked_ix(
        w.program, w.ata(w.payer.pubkey()), w.mint, w.ata(w.pay_to.pubkey()), w.payer.pubkey(), PRICE, 5
    )
    out = await verify(w.adapter, w, partially_signed(w, ixs))
    assert out.reason == R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED
