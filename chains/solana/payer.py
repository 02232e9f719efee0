"""Build an ``exact`` SVM payment like the official clients do (architecture.md §5.2), partially signed by the payer."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
from solana.rpc.async_api import AsyncClient
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.null_signer import NullSigner
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from x402.wire.models import PaymentRequirements

TOKEN_PROGRAM: Final = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM: Final = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
COMPUTE_BUDGET_PROGRAM: Final = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM: Final = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
LIGHTHOUSE_PROGRAM: Final = Pubkey.from_string("L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95")
TOKEN_PROGRAMS: Final = (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)

#: What the official clients put in the compute-budget instructions.
DEFAULT_COMPUTE_UNIT_LIMIT: Final = 20_000
DEFAULT_COMPUTE_UNIT_PRICE: Final = 1  # micro-lamports per compute unit

TRANSFER_CHECKED: Final = 12
MINT_DECIMALS_OFFSET: Final = 44


def transfer_checked_ix(
    program: Pubkey, source: Pubkey, mint: Pubkey, dest: Pubkey, authority: Pubkey, amount: int, decimals: int
) -> Instruction:
    """An SPL Token / Token-2022 ``TransferChecked`` instruction."""
    data = bytes([TRANSFER_CHECKED]) + amount.to_bytes(8, "little") + bytes([decimals])
    accounts = [
        AccountMeta(source, is_signer=False, is_writable=True),
        AccountMeta(mint, is_signer=False, is_writable=False),
        AccountMeta(dest, is_signer=False, is_writable=True),
        AccountMeta(authority, is_signer=True, is_writable=False),
    ]
    return Instruction(program, data, accounts)


def memo_ix(text: str | bytes) -> Instruction:
    """A Memo program instruction without accounts (as the official clients send it)."""
    return Instruction(MEMO_PROGRAM, text.encode() if isinstance(text, str) else text, [])


def payment_instructions(
    payer: Pubkey,
    requirements: PaymentRequirements,
    *,
    token_program: Pubkey,
    decimals: int,
    memo: str | None = None,
    compute_unit_limit: int = DEFAULT_COMPUTE_UNIT_LIMIT,
    compute_unit_price: int = DEFAULT_COMPUTE_UNIT_PRICE,
) -> list[Instruction]:
    """Limit, price, TransferChecked to payTo's ATA and a memo (``extra.memo`` or 16 random bytes as hex)."""
    mint = Pubkey.from_string(requirements.asset)
    pay_to = Pubkey.from_string(requirements.pay_to)
    source = get_associated_token_address(payer, mint, token_program)
    dest = get_associated_token_address(pay_to, mint, token_program)
    if memo is None:
        extra_memo = requirements.extra.get("memo")
        memo = extra_memo if isinstance(extra_memo, str) else secrets.token_hex(16)
    return [
        set_compute_unit_limit(compute_unit_limit),
        set_compute_unit_price(compute_unit_price),
        transfer_checked_ix(token_program, source, mint, dest, payer, int(requirements.amount), decimals),
        memo_ix(memo),
    ]


def sign_partially(
    payer: Keypair, fee_payer: Pubkey, instructions: Sequence[Instruction], blockhash: Hash
) -> VersionedTransaction:
    """A v0 transaction with ``fee_payer`` as account 0, signed by ``payer`` only (other signature slots empty)."""
    msg = MessageV0.try_compile(fee_payer, list(instructions), [], blockhash)
    required = msg.account_keys[: msg.header.num_required_signatures]
    signers = [payer if key == payer.pubkey() else NullSigner(key) for key in required]
    return VersionedTransaction(msg, signers)


def encode_payload(tx: VersionedTransaction) -> dict[str, str]:
    """The scheme payload ``{"transaction": <base64>}``."""
    return {"transaction": base64.b64encode(bytes(tx)).decode()}


async def mint_info(client: AsyncClient, mint: Pubkey) -> tuple[Pubkey, int]:
    """(token program, decimals) of a mint, read from the chain."""
    acc = (await client.get_account_info(mint)).value
    if acc is None:
        raise ValueError(f"mint {mint} does not exist")
    if acc.owner not in TOKEN_PROGRAMS:
        raise ValueError(f"{mint} is not an SPL Token or Token-2022 mint")
    return acc.owner, bytes(acc.data)[MINT_DECIMALS_OFFSET]


async def create_payment(
    client_or_rpc: AsyncClient | str,
    payer_keypair: Keypair,
    requirements: PaymentRequirements | Mapping[str, Any],
) -> dict[str, str]:
    """The ``payload`` of an exact SVM payment for ``requirements`` (v2 shape), signed by ``payer_keypair``."""
    reqs = (
        requirements
        if isinstance(requirements, PaymentRequirements)
        else msgspec.convert(dict(requirements), PaymentRequirements)
    )
    fee_payer = reqs.extra.get("feePayer")
    if not isinstance(fee_payer, str):
        raise ValueError("requirements.extra.feePayer is missing")
    own = isinstance(client_or_rpc, str)
    client = AsyncClient(client_or_rpc) if isinstance(client_or_rpc, str) else client_or_rpc
    try:
        program, decimals = await mint_info(client, Pubkey.from_string(reqs.asset))
        given = reqs.extra.get("recentBlockhash")
        if isinstance(given, str):
            blockhash = Hash.from_string(given)
        else:
            blockhash = (await client.get_latest_blockhash()).value.blockhash
    finally:
        if own:
            await client.close()
    ixs = payment_instructions(payer_keypair.pubkey(), reqs, token_program=program, decimals=decimals)
    return encode_payload(sign_partially(payer_keypair, Pubkey.from_string(fee_payer), ixs, blockhash))
