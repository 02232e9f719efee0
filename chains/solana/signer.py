"""The Solana payer: builds ``exact`` SVM payments the way the official clients do (architecture.md §5.2).

Implements the ``x402.client.PaymentSigner`` protocol structurally (chains never import the client or web layer).
Reading the mint (token program, decimals) and a recent blockhash needs the network's RPC URLs (tried in order,
failing over like the adapter's pool). Agent wallets sign with this class too.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Any, Final

from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chains.solana.adapter import parse_keypair
from chains.solana.payer import encode_payload, mint_info, payment_instructions, sign_partially
from chains.solana.rpc import SolanaRpcPool
from x402.errors import ChainRejected, PaymentRefused
from x402.wire.models import PaymentRequirements
from x402.wire.networks import is_solana, to_caip2

#: The official clients refuse a seller memo longer than this (architecture.md §5.1).
MAX_MEMO_BYTES: Final = 256


def _pubkey(text: object) -> Pubkey | None:
    if not isinstance(text, str):
        return None
    try:
        return Pubkey.from_string(text)
    except ValueError:
        return None


def payable(requirements: PaymentRequirements, networks: Container[str], payer: Pubkey | None = None) -> bool:
    """An ``exact`` offer on one of ``networks`` with a fee payer (not ``payer``) and a memo the clients accept."""
    if requirements.scheme != "exact" or requirements.network not in networks:
        return False
    fee_payer = _pubkey(requirements.extra.get("feePayer"))
    if fee_payer is None or fee_payer == payer:
        return False
    memo = requirements.extra.get("memo")
    if memo is not None and (not isinstance(memo, str) or len(memo.encode()) > MAX_MEMO_BYTES):
        return False
    return _pubkey(requirements.asset) is not None and _pubkey(requirements.pay_to) is not None


def _rpc_of(rpc: str | Sequence[str] | SolanaRpcPool) -> tuple[str, ...] | SolanaRpcPool:
    if isinstance(rpc, SolanaRpcPool):
        return rpc
    return (rpc,) if isinstance(rpc, str) else tuple(rpc)


class SvmSigner:
    """Pays ``exact`` offers on the Solana networks it has RPC URLs for, with one keypair (fees: the facilitator)."""

    networks: Sequence[str] = ("solana:*",)

    def __init__(
        self,
        keypair: Keypair | str,
        rpc_url_by_network: Mapping[str, str | Sequence[str] | SolanaRpcPool],
        *,
        rpc_timeout: float = 10.0,
    ) -> None:
        # a long-lived pool (the wallet service's) keeps its breakers across payments; the signer never closes it
        self._keypair = keypair if isinstance(keypair, Keypair) else parse_keypair(keypair, "the payer key")
        self._rpc = {to_caip2(net): _rpc_of(rpc) for net, rpc in rpc_url_by_network.items() if rpc}
        for net in self._rpc:
            if not is_solana(net):
                raise ValueError(f"{net} is not a Solana network")
        self.rpc_timeout = rpc_timeout
        self._mints: dict[tuple[str, str], tuple[Pubkey, int]] = {}

    def __repr__(self) -> str:
        return f"SvmSigner({self.address})"

    def sign_in_message(self, message: str) -> str:
        """ed25519 signature of a Sign-In-With-Solana message, base58."""
        return str(self._keypair.sign_message(message.encode("utf-8")))

    @property
    def address(self) -> str:
        """The payer's (transfer authority's) base58 address."""
        return str(self._keypair.pubkey())

    def can_pay(self, requirements: PaymentRequirements) -> bool:
        """An ``exact`` offer on a Solana network we have an RPC URL for, with a facilitator fee payer not us."""
        return payable(requirements, self._rpc, self._keypair.pubkey())

    async def create_payload(self, requirements: PaymentRequirements, x402_version: int) -> dict[str, Any]:
        """``{"transaction": <base64>}`` paying ``requirements`` (v2 shape; the payload is the same in v1)."""
        if not self.can_pay(requirements):
            raise PaymentRefused(
                f"cannot pay {requirements.scheme} on {requirements.network} with this Solana signer",
                code="unsupported_offer",
            )
        fee_payer = Pubkey.from_string(str(requirements.extra["feePayer"]))
        program, decimals, blockhash = await self._chain_facts(self._rpc[requirements.network], requirements)
        ixs = payment_instructions(self._keypair.pubkey(), requirements, token_program=program, decimals=decimals)
        return encode_payload(sign_partially(self._keypair, fee_payer, ixs, blockhash))

    async def _chain_facts(
        self, rpc: tuple[str, ...] | SolanaRpcPool, req: PaymentRequirements
    ) -> tuple[Pubkey, int, Hash]:
        """(token program, decimals) of the mint (cached) and a blockhash (``extra.recentBlockhash`` if given)."""
        given = req.extra.get("recentBlockhash")
        blockhash: Hash | None = None
        if isinstance(given, str):
            try:
                blockhash = Hash.from_string(given)
            except ValueError:
                blockhash = None  # unusable: fetch one, as the official client does
        cached = self._mints.get((req.network, req.asset))
        if cached is not None and blockhash is not None:
            return cached[0], cached[1], blockhash
        mint = Pubkey.from_string(req.asset)

        async def read_mint(client: AsyncClient) -> tuple[Pubkey, int]:
            return await mint_info(client, mint)

        async def latest(client: AsyncClient) -> Hash:
            return (await client.get_latest_blockhash()).value.blockhash

        # no answer from any URL raises ChainUnavailable (503) from the pool itself
        own = not isinstance(rpc, SolanaRpcPool)
        pool = SolanaRpcPool(req.network, rpc, self.rpc_timeout) if not isinstance(rpc, SolanaRpcPool) else rpc
        try:
            if cached is None:
                cached = await pool.call(read_mint)
                self._mints[(req.network, req.asset)] = cached
            if blockhash is None:
                blockhash = await pool.call(latest)
        except ValueError as exc:
            raise PaymentRefused(str(exc), code="invalid_asset") from None
        except RPCException as exc:
            raise ChainRejected(f"the Solana RPC of {req.network} refused: {exc}", network=req.network) from None
        finally:
            if own:
                await pool.close()
        return cached[0], cached[1], blockhash


__all__ = ["MAX_MEMO_BYTES", "SvmSigner", "payable"]
