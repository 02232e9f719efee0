"""Solana (SVM) chain adapter: verifies, co-signs, sends and confirms ``exact`` payments (architecture.md §5).

The work is split like ``chains/evm/``: ``verify`` (checks, co-sign, simulate), ``settle`` (send, confirm),
``status`` (payer-side and by-transaction lookups) and ``rpc`` (failover and circuit breakers per URL).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chains.base import (
    Confirmation,
    PaymentContext,
    PaymentStatus,
    PreparedSettlement,
    ReplayKey,
    TxCheck,
    TxVerification,
    VerifyOutcome,
    endpoint_label,
)
from chains.config import ChainOptions, NetworkConfig
from chains.kinds import exact_kinds
from chains.solana import status
from chains.solana.rpc import SolanaRpcPool, pool_for
from chains.solana.settle import TX_LIFETIME_SECONDS, SolanaSettler
from chains.solana.smartwallet import SmartWalletOptions
from chains.solana.status import FINALIZED_CONFIRMATIONS, TRANSACTION_NOT_FOUND
from chains.solana.verify import (
    DEFAULT_MAX_COMPUTE_UNITS,
    DEFAULT_MAX_SIGNERS,
    FEE_PAYER_IN_ACCOUNTS,
    MAX_COMPUTE_UNIT_PRICE,
    SolanaVerifier,
)
from x402.errors import ChainUnavailable, ConfigError
from x402.wire.models import PaymentRequirements, SupportedKind

log = logging.getLogger("chains.solana")


def parse_keypair(text: str, what: str = "an X402_SVM_FEE_PAYER_KEYS entry") -> Keypair:
    """A keypair from a base58 64-byte secret key, a base58 32-byte seed or a solana-keygen JSON byte array."""
    text = text.strip()
    try:
        if text.startswith("["):
            raw = bytes(json.loads(text))
            return Keypair.from_bytes(raw) if len(raw) == 64 else Keypair.from_seed(raw)
        if len(text) <= 44:
            return Keypair.from_seed(bytes(Pubkey.from_string(text)))
        return Keypair.from_base58_string(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} is not a valid Solana secret key") from exc


class SolanaAdapter:
    """The ``solana:*`` chain adapter (exact scheme; fee payers are the facilitator's keys)."""

    name = "solana"

    def __init__(
        self,
        networks: Sequence[NetworkConfig],
        fee_payers: Sequence[Keypair],
        *,
        rpc_timeout: float = 5.0,
        poll_interval: float = 0.4,
        max_compute_units: int = DEFAULT_MAX_COMPUTE_UNITS,
        max_signers: int = DEFAULT_MAX_SIGNERS,
        smart_wallet: SmartWalletOptions | None = None,
    ) -> None:
        self._configs = {n.network: n for n in networks}
        self._pools = {n.network: SolanaRpcPool(n.network, n.rpc_urls, rpc_timeout) for n in networks}
        self._keys = {str(k.pubkey()): k for k in fee_payers}
        self.verifier = SolanaVerifier(
            self._configs,
            self._pools,
            self._keys,
            max_compute_units=max_compute_units,
            max_signers=max_signers,
            smart_wallet=smart_wallet,
        )
        self.settler = SolanaSettler(self.verifier, self._pools, poll_interval=poll_interval)

    def __repr__(self) -> str:
        return f"SolanaAdapter(networks={list(self._configs)}, fee_payers={list(self._keys)})"

    def pool(self, network: str) -> SolanaRpcPool:
        """The RPC pool of a configured network."""
        return self._pools[network]

    # ------------------------------------------------------------------ discovery

    def rpc_endpoints(self) -> list[tuple[str, str, str]]:
        """``(network, host, breaker state)`` per RPC URL of every configured network."""
        return [
            (net, endpoint_label(url), state)
            for net, pool in self._pools.items()
            for url, state in pool.breaker_states()
        ]

    def networks(self) -> Sequence[str]:
        """CAIP-2 ids this adapter serves."""
        return list(self._configs)

    def supported_kinds(self) -> list[SupportedKind]:
        """v2 kinds with ``extra.feePayer`` (our first fee payer), plus v1 kinds where a v1 name exists.

        With the smart-wallet path on, ``extra.features.smartWalletSupported`` says so (as the reference does).
        """
        if not self._keys:
            return []
        extra: dict[str, Any] = {"feePayer": next(iter(self._keys))}
        if self.verifier.smart_wallet.enabled:
            extra["features"] = {"smartWalletSupported": True}
        return exact_kinds(self._configs, extra)

    def signers(self) -> dict[str, list[str]]:
        """Fee payer addresses under ``solana:*``."""
        return {"solana:*": list(self._keys)} if self._keys else {}

    # ------------------------------------------------------------------ verify and settle

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """Check an exact SVM payment in the TS 2.27 order (architecture.md §5.3); simulate it when asked."""
        return await self.verifier.verify(ctx, simulate=simulate)

    def replay_key(self, ctx: PaymentContext) -> ReplayKey:
        """Network, mint, transfer authority and the message hash: one transaction settles once."""
        return self.settler.replay_key(ctx)

    async def prepare_settlement(
        self, ctx: PaymentContext, *, nonce_floor: int | None = None, signer: str | None = None
    ) -> PreparedSettlement:
        """Re-check, co-sign as the fee payer and simulate; raises SettlementRejected when it would fail."""
        return await self.settler.prepare_settlement(ctx, nonce_floor=nonce_floor, signer=signer)

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """sendTransaction with preflight; an already processed transaction is fine, other refusals raise 502."""
        await self.settler.broadcast(network, prepared)

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, *, timeout: float) -> Confirmation:
        """Poll getSignatureStatuses until confirmed/finalized, failed or ``timeout``."""
        return await self.settler.confirm(ctx, network, tx_id, timeout=timeout)

    # ------------------------------------------------------------------ lookups

    async def payment_status(
        self, network: str, payload: Mapping[str, Any], requirements: PaymentRequirements
    ) -> PaymentStatus:
        """Payer side: settled, pending or void (see ``chains.solana.status.payment_status``)."""
        return await status.payment_status(pool_for(self._pools, network), payload)

    async def verify_transaction(self, check: TxCheck) -> TxVerification:
        """A confirmed transaction that moved >= ``min_amount`` of ``asset`` into ``pay_to``'s token account."""
        return await status.verify_transaction(pool_for(self._pools, check.network), check)

    async def balance_of(self, network: str, asset: str, owner: str) -> int:
        """``owner``'s balance of the mint ``asset`` in atomic units (its associated token account; none: 0)."""
        return await status.balance_of(pool_for(self._pools, network), asset, owner)

    # ------------------------------------------------------------------ lifecycle

    async def check_health(self) -> dict[str, bool]:
        """getSlot per network (any RPC URL answering counts)."""
        out: dict[str, bool] = {}
        for net, pool in self._pools.items():

            async def run(c: AsyncClient) -> Any:
                return await c.get_slot()

            try:
                await pool.call(run)
                out[net] = True
            except (ChainUnavailable, RPCException):
                out[net] = False
        return out

    async def close(self) -> None:
        """Close every RPC client."""
        for pool in self._pools.values():
            await pool.close()


def create_adapter(options: ChainOptions, nets: list[NetworkConfig]) -> SolanaAdapter | None:
    """Entry point: the Solana adapter for the configured ``solana:*`` networks (None when there are none)."""
    if not nets:
        return None
    keys = [parse_keypair(k) for k in options.svm_fee_payer_keys]
    if not keys:
        log.warning("no X402_SVM_FEE_PAYER_KEYS: Solana exact payments cannot be verified or settled")
    try:
        smart = SmartWalletOptions.from_settings(
            options.svm_smart_wallet,
            options.svm_smart_wallet_programs,
            options.svm_smart_wallet_max_compute_units,
            options.svm_smart_wallet_max_price,
        )
    except ValueError as exc:
        raise ConfigError(f"X402_SVM_SMART_WALLET_PROGRAMS holds an invalid program id: {exc}") from None
    return SolanaAdapter(nets, keys, rpc_timeout=options.rpc_timeout, smart_wallet=smart)


__all__ = [
    "FEE_PAYER_IN_ACCOUNTS",
    "FINALIZED_CONFIRMATIONS",
    "MAX_COMPUTE_UNIT_PRICE",
    "TRANSACTION_NOT_FOUND",
    "TX_LIFETIME_SECONDS",
    "SmartWalletOptions",
    "SolanaAdapter",
    "create_adapter",
    "parse_keypair",
]
