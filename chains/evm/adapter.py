"""The EVM ``exact`` (EIP-3009) chain adapter and its ``x402.chains`` entry point."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chains.base import (
    Confirmation,
    LaneState,
    PaymentContext,
    PaymentStatus,
    PreparedSettlement,
    ReplayKey,
    SettlementDraft,
    TxCheck,
    TxVerification,
    VerifyOutcome,
    endpoint_label,
)
from chains.config import ChainOptions, NetworkConfig
from chains.evm import permit2 as p2
from chains.evm.permit2_verify import Permit2Verifier, is_permit2_payment
from chains.evm.rpc import RpcError, RpcPool
from chains.evm.settle import EvmSettler
from chains.evm.status import authorization_status, permit2_status
from chains.evm.verify import EvmVerifier
from chains.kinds import exact_kinds
from x402.errors import ChainRejected, ChainUnavailable, ConfigError
from x402.wire.models import PaymentRequirements, SupportedKind
from x402.wire.networks import evm_chain_id

log = logging.getLogger("chains.evm")

#: ERC-20 ``balanceOf(address)`` selector.
_BALANCE_OF = "0x70a08231"

#: eth_call sender when no signer is configured (EIP-3009 transfers do not depend on msg.sender).
_NO_SIGNER_SENDER = "0x0000000000000000000000000000000000000402"


def _check_ecc_backend() -> None:
    # Without coincurve eth-keys falls back to pure Python: signing/recovery become ~20x slower.
    from eth_keys.backends import get_backend

    backend = get_backend()
    if type(backend).__name__ != "CoinCurveECCBackend":
        log.warning("eth-keys uses %s, not CoinCurveECCBackend: EVM signing will be slow", type(backend).__name__)


class EvmAdapter:
    """Verifies and settles ``exact`` EIP-3009 payments on the configured EVM networks."""

    name = "evm"

    def __init__(
        self,
        nets: Sequence[NetworkConfig],
        *,
        signer_key: str | None = None,
        signer_keys: Sequence[str] = (),
        rpc_timeout: float = 5.0,
    ) -> None:
        self._nets = {n.network: n for n in nets}
        self._pools = {n.network: RpcPool(n.network, n.rpc_urls, timeout=rpc_timeout) for n in nets}
        accounts: list[LocalAccount] = []
        for i, key in enumerate(([signer_key] if signer_key else []) + list(signer_keys)):
            try:
                account = Account.from_key(key)
            except (ValueError, TypeError):
                raise ConfigError(f"EVM signer key #{i + 1} is not a valid secp256k1 private key") from None
            if all(a.address != account.address for a in accounts):
                accounts.append(account)
        if accounts:
            _check_ecc_backend()
        self._signers = [a.address for a in accounts]
        self._signer = self._signers[0] if self._signers else None
        self.verifier = EvmVerifier(self._nets, self._pools, self._signer or _NO_SIGNER_SENDER)
        self.settler = EvmSettler(self.verifier, self._pools, accounts)
        self.permit2 = Permit2Verifier(self.verifier, lambda: self._signers)
        self._chain_checked: set[str] = set()

    def __repr__(self) -> str:
        return f"EvmAdapter(networks={list(self._nets)}, signers={self._signers})"

    @property
    def signer_address(self) -> str | None:
        """The facilitator's first settlement address, or None when no signer key is configured."""
        return self._signer

    @property
    def signer_addresses(self) -> list[str]:
        """Every settlement address, in configuration order (each has its own nonce lane per network)."""
        return list(self._signers)

    def pool(self, network: str) -> RpcPool:
        """The RPC pool of a configured network."""
        return self._pools[network]

    def rpc_endpoints(self) -> list[tuple[str, str, str]]:
        """``(network, host, breaker state)`` per RPC URL of every configured network."""
        return [
            (net, endpoint_label(url), state)
            for net, pool in self._pools.items()
            for url, state in pool.breaker_states()
        ]

    async def gas_balance(self, network: str, signer: str) -> int:
        """The signer's pending ETH balance in wei."""
        return int(await self._pools[network].call("eth_getBalance", [signer, "pending"]), 16)

    def networks(self) -> Sequence[str]:
        """CAIP-2 ids this adapter serves."""
        return list(self._nets)

    def supported_kinds(self) -> list[SupportedKind]:
        """v2 (and, where a v1 name exists, v1) ``exact`` kinds, and v2 ``upto`` kinds whose ``extra`` names the
        facilitator address payers bind their witness to; none without a signer, since we could not settle."""
        if self._signer is None:
            return []
        upto = [
            SupportedKind(x402_version=2, scheme="upto", network=n, extra={"facilitatorAddress": self._signer})
            for n in self._nets
        ]
        return exact_kinds(self._nets) + upto

    def extension_keys(self) -> list[str]:
        """``eip2612GasSponsoring``: a Permit2 payment may carry an EIP-2612 permit of Permit2 we submit."""
        return [p2.EIP2612_EXTENSION] if self._signer is not None else []

    def settlement_signer(self, ctx: PaymentContext) -> str | None:
        """The signer that must send this settlement: an ``upto`` witness names it (the proxy checks msg.sender)."""
        if ctx.requirements.scheme != "upto":
            return None
        try:
            auth = p2.parse_permit2(ctx.payload)
        except ValueError:
            return None
        if auth.facilitator20 is None:
            return None
        want = "0x" + auth.facilitator20.hex()
        return next((s for s in self._signers if s.lower() == want), None)

    def signers(self) -> dict[str, list[str]]:
        """``{"eip155:*": [signer, ...]}`` (empty without a signer)."""
        return {"eip155:*": list(self._signers)} if self._signers else {}

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """architecture.md §4.4 (§4.6 / §12.2 for Permit2 and ``upto``) checks; invalid payments are values, RPC
        trouble raises ChainUnavailable/Rejected."""
        if is_permit2_payment(ctx):
            return await self.permit2.verify(ctx, simulate=simulate)
        return await self.verifier.verify(ctx, simulate=simulate)

    def replay_key(self, ctx: PaymentContext) -> ReplayKey:
        """(network, asset, payer, nonce), lower-cased (the Permit2 nonce in decimal)."""
        if p2.is_permit2_payload(ctx.payload):
            return ReplayKey(
                ctx.requirements.network,
                ctx.requirements.asset.lower(),
                (p2.payer_of(ctx.payload) or "").lower(),
                p2.nonce_key(ctx.payload),
            )
        auth = ctx.payload.get("authorization")
        if not isinstance(auth, dict):
            auth = {}
        return ReplayKey(
            ctx.requirements.network,
            ctx.requirements.asset.lower(),
            str(auth.get("from", "")).lower(),
            str(auth.get("nonce", "")).lower(),
        )

    async def prepare_settlement(
        self, ctx: PaymentContext, *, nonce_floor: int | None = None, signer: str | None = None
    ) -> PreparedSettlement:
        """Sign the settlement (nonce = max(floor, pending count)); raises SettlementRejected if it would revert."""
        return await self.settler.prepare(ctx, nonce_floor, signer)

    async def draft_settlement(self, ctx: PaymentContext, signer: str) -> SettlementDraft | None:
        """The settlement estimated, priced and funds-checked, unsigned (the lane signs it at its nonce)."""
        return await self.settler.draft(ctx, signer)

    async def lane_state(self, network: str, signer: str) -> LaneState:
        """The signer's mined/pending nonces and the chain time."""
        return await self.settler.lane_state(network, signer)

    async def tx_known(self, network: str, tx_id: str) -> bool:
        """The node knows this transaction."""
        return await self.settler.tx_known(network, tx_id)

    async def prepare_fill(
        self, network: str, signer: str, nonce: int, *, above: bytes | None = None
    ) -> PreparedSettlement:
        """A signed zero-value self-transfer that consumes ``nonce``."""
        return await self.settler.prepare_fill(network, signer, nonce, above=above)

    async def prepare_bump(self, network: str, raw: bytes) -> PreparedSettlement:
        """The signed transaction again with higher fees (same nonce)."""
        return await self.settler.prepare_bump(network, raw)

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """Send the signed transaction; re-sending the same one is harmless."""
        await self.settler.broadcast(network, prepared)

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, *, timeout: float) -> Confirmation:
        """Wait up to ``timeout`` (0 = one look) for the receipt and check its Transfer event."""
        return await self.settler.confirm(ctx, network, tx_id, timeout)

    async def verify_transaction(self, check: TxCheck) -> TxVerification:
        """Verify a plain ERC-20 transfer by transaction hash."""
        return await self.settler.verify_transaction(check)

    async def payment_status(
        self, network: str, payload: Mapping[str, Any], requirements: PaymentRequirements
    ) -> PaymentStatus:
        """Whether an EIP-3009 authorization was used (``authorizationState``), or expired unused in chain time."""
        if network not in self._pools:
            raise ChainUnavailable(f"network {network} is not configured", network=network)
        if p2.is_permit2_payload(payload):
            return await permit2_status(self._pools[network], payload)
        return await authorization_status(self._pools[network], payload, requirements)

    async def balance_of(self, network: str, asset: str, owner: str) -> int:
        """``asset.balanceOf(owner)`` in atomic units, through the network's RPC URLs (failover, breakers)."""
        pool = self._pools.get(network)
        if pool is None:
            raise ChainUnavailable(f"network {network} is not configured", network=network)
        data = _BALANCE_OF + "00" * 12 + owner.lower().removeprefix("0x")
        try:
            out = await pool.call("eth_call", [{"to": asset, "data": data}, "latest"])
        except RpcError as exc:
            raise ChainRejected(f"balanceOf on {asset} was refused: {exc.message}", network=network) from None
        return int(out, 16) if isinstance(out, str) and out not in ("0x", "") else 0

    async def _healthy(self, network: str) -> bool:
        try:
            answer = await self._pools[network].call("eth_chainId", [])
        except (ChainUnavailable, RpcError):
            return False
        try:
            chain_id = int(answer, 16)
        except (TypeError, ValueError):
            return False
        if chain_id != evm_chain_id(network):
            if network not in self._chain_checked:
                log.error("RPC of %s reports chain id %d: wrong network configured", network, chain_id)
                self._chain_checked.add(network)
            return False
        return True

    async def check_health(self) -> dict[str, bool]:
        """``eth_chainId`` on every network, which must match the CAIP-2 id."""
        nets = list(self._nets)
        results = await asyncio.gather(*(self._healthy(n) for n in nets))
        return dict(zip(nets, results, strict=True))

    async def close(self) -> None:
        """Stop the receipt watchers and close every RPC pool."""
        await self.settler.close()
        for pool in self._pools.values():
            await pool.close()


def create_adapter(options: ChainOptions, nets: list[NetworkConfig]) -> EvmAdapter | None:
    """The ``x402.chains`` entry point: one adapter for all configured ``eip155`` networks."""
    evm_nets = [n for n in nets if n.family == "eip155"]
    if not evm_nets:
        return None
    return EvmAdapter(
        evm_nets,
        signer_key=options.evm_signer_key,
        signer_keys=options.evm_signer_keys,
        rpc_timeout=options.rpc_timeout,
    )
