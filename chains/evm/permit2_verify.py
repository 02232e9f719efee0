"""Facilitator checks of Permit2 payments: ``exact`` with ``assetTransferMethod: "permit2"`` and ``upto``.

architecture.md §4.6 / §12.2. Order: scheme, network, payload shape, spender, recipient, facilitator (``upto``),
deadline, validAfter, amount, token, signature, EIP-2612 extension; then, with simulation, proxy code, the
token's allowance to Permit2, the balance and an ``eth_call`` of the proxy's settle (one RPC round).

In the ``settle`` phase of ``upto`` the requirements' amount is the actual amount: it must not exceed the signed
maximum (``invalid_upto_evm_payload_settlement_exceeds_amount``); everything else is checked against the maximum.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Final

from chains.base import PaymentContext, VerifyOutcome
from chains.evm import permit2 as p2
from chains.evm.eip712 import address_bytes, to_checksum_address
from chains.evm.presets import known_asset
from chains.evm.rpc import RpcError
from chains.evm.verify import (
    ERC1271_MAGIC,
    VALID_BEFORE_MARGIN,
    EvmVerifier,
    balance_of_data,
    decode_uint,
    is_valid_signature_data,
)
from x402.errors import X402Error
from x402.wire import reasons
from x402.wire.models import is_canonical_uint
from x402.wire.networks import evm_chain_id

#: The schemes (and for ``exact`` the transfer method) this module answers for.
UPTO: Final = "upto"
EXACT: Final = "exact"


def is_permit2_payment(ctx: PaymentContext) -> bool:
    """True when the payment is ``upto``, or ``exact`` by Permit2 (declared in extra or by the payload's shape)."""
    req = ctx.requirements
    if req.scheme == UPTO or ctx.scheme == UPTO:
        return True
    return req.extra.get("assetTransferMethod") == "permit2" or p2.is_permit2_payload(ctx.payload)


class Permit2Verifier:
    """Permit2 checks on top of the EIP-3009 verifier's RPC helpers and caches."""

    def __init__(self, base: EvmVerifier, facilitators: Callable[[], Sequence[str]]) -> None:
        self.base = base
        self._facilitators = facilitators
        self._proxy_code: set[tuple[str, str]] = set()

    def facilitator_addresses(self) -> list[str]:
        """Our settlement addresses, lower-cased (an ``upto`` witness must name one of them)."""
        return [a.lower() for a in self._facilitators()]

    # -- static checks (no RPC) -------------------------------------------------------------------------------

    def static_checks(self, ctx: PaymentContext) -> tuple[p2.Permit2Authorization, int, int] | VerifyOutcome:
        """Scheme, network, shape, spender, recipient, facilitator, times, amount, token: (auth, chain id, amount)."""
        req, acc = ctx.requirements, ctx.accepted
        upto = req.scheme == UPTO
        scheme_code = reasons.INVALID_UPTO_EVM_SCHEME if upto else reasons.INVALID_EXACT_EVM_SCHEME
        if (
            req.scheme not in (EXACT, UPTO)
            or ctx.scheme != req.scheme
            or (acc is not None and acc.scheme != req.scheme)
        ):
            return VerifyOutcome.invalid(scheme_code, f"scheme {ctx.scheme!r} is not {req.scheme!r}")
        if not upto and req.extra.get("assetTransferMethod") != "permit2":
            return VerifyOutcome.invalid(
                reasons.UNSUPPORTED_PAYLOAD_TYPE, "a Permit2 payload needs extra.assetTransferMethod 'permit2'"
            )
        if ctx.network != req.network or (acc is not None and acc.network != req.network):
            code = reasons.INVALID_UPTO_EVM_NETWORK_MISMATCH if upto else reasons.INVALID_EXACT_EVM_NETWORK_MISMATCH
            return VerifyOutcome.invalid(code, "the payment's network differs from the requirements'")
        net = self.base.nets.get(req.network)
        if net is None:
            return VerifyOutcome.invalid(reasons.INVALID_NETWORK, f"network {req.network} is not configured")
        if known_asset(net, req.asset) is None:
            return VerifyOutcome.invalid(
                reasons.INVALID_PAYMENT_REQUIREMENTS, f"asset {req.asset} is not accepted on {req.network}"
            )
        if not is_canonical_uint(req.amount):
            return VerifyOutcome.invalid(reasons.INVALID_PAYMENT_REQUIREMENTS, "requirements.amount is not atomic")
        amount = int(req.amount)
        try:
            auth = p2.parse_permit2(ctx.payload)
            if upto != auth.upto:
                raise ValueError("witness.facilitator is required by upto and absent from exact")
        except ValueError as exc:
            return VerifyOutcome.invalid(reasons.INVALID_PERMIT2_PAYLOAD_FORMAT, str(exc), p2.payer_of(ctx.payload))
        bad = self._field_checks(ctx, auth, amount)
        if bad is not None:
            return VerifyOutcome.invalid(bad[0], bad[1], auth.from_)
        return auth, evm_chain_id(req.network), amount

    def _field_checks(self, ctx: PaymentContext, auth: p2.Permit2Authorization, amount: int) -> tuple[str, str] | None:
        req = ctx.requirements
        proxy = p2.UPTO_PROXY_ADDRESS if auth.upto else p2.EXACT_PROXY_ADDRESS
        if auth.spender20 != address_bytes(proxy):
            return reasons.INVALID_PERMIT2_SPENDER, f"the spender must be the x402 proxy {proxy}"
        try:
            pay_to20 = address_bytes(req.pay_to)
        except ValueError:
            return reasons.INVALID_PAYMENT_REQUIREMENTS, "requirements.payTo is not an address"
        if auth.to20 != pay_to20:
            return reasons.INVALID_PERMIT2_RECIPIENT_MISMATCH, "witness.to is not payTo"
        if auth.facilitator20 is not None and "0x" + auth.facilitator20.hex() not in self.facilitator_addresses():
            return reasons.UPTO_FACILITATOR_MISMATCH, "witness.facilitator is not this facilitator"
        now = int(self.base.clock())
        if auth.deadline < now + VALID_BEFORE_MARGIN:
            return reasons.PERMIT2_DEADLINE_EXPIRED, "the Permit2 deadline has passed or is too near"
        if auth.valid_after > now:
            return reasons.PERMIT2_NOT_YET_VALID, "witness.validAfter is in the future"
        if auth.upto and ctx.phase == "settle":
            if amount > auth.amount:
                return (
                    reasons.INVALID_UPTO_EVM_PAYLOAD_SETTLEMENT_EXCEEDS_AMOUNT,
                    f"settlement amount {amount} exceeds the signed maximum {auth.amount}",
                )
        elif auth.amount != amount:
            return reasons.PERMIT2_AMOUNT_MISMATCH, f"permitted.amount {auth.amount} != amount {amount}"
        try:
            asset20 = address_bytes(req.asset)
        except ValueError:
            return reasons.INVALID_PAYMENT_REQUIREMENTS, "requirements.asset is not an address"
        if auth.token20 != asset20:
            return reasons.PERMIT2_TOKEN_MISMATCH, "permitted.token is not the asset"
        return None

    def eip2612(self, ctx: PaymentContext, auth: p2.Permit2Authorization) -> p2.Eip2612Permit | VerifyOutcome | None:
        """The payment's EIP-2612 permit of Permit2 (checked against the authorization), None when absent."""
        try:
            permit = p2.parse_eip2612(ctx.extensions)
        except ValueError as exc:
            return VerifyOutcome.invalid(reasons.INVALID_EIP2612_EXTENSION_FORMAT, str(exc), auth.from_)
        if permit is None:
            return None
        bad: tuple[str, str] | None = None
        if permit.from20 != auth.from20:
            bad = reasons.EIP2612_FROM_MISMATCH, "the permit's owner is not the payer"
        elif permit.asset20 != auth.token20:
            bad = reasons.EIP2612_ASSET_MISMATCH, "the permit is for another token"
        elif permit.spender20 != address_bytes(p2.PERMIT2_ADDRESS):
            bad = reasons.EIP2612_SPENDER_NOT_PERMIT2, "the permit's spender is not Permit2"
        elif permit.deadline < int(self.base.clock()) + VALID_BEFORE_MARGIN:
            bad = reasons.EIP2612_DEADLINE_EXPIRED, "the permit's deadline has passed"
        elif permit.amount != auth.amount:
            bad = reasons.PERMIT2_2612_AMOUNT_MISMATCH, "the permit's amount must equal permitted.amount"
        return VerifyOutcome.invalid(bad[0], bad[1], auth.from_) if bad is not None else permit

    # -- with RPC ---------------------------------------------------------------------------------------------

    async def signature_ok(self, network: str, auth: p2.Permit2Authorization, chain_id: int) -> bool:
        """ECDSA by ``from`` (local), else EIP-1271 when ``from`` holds code (as Permit2 itself checks)."""
        if auth.recovers_to_payer(chain_id):
            return True
        if not await self.base.has_code(network, auth.from_):
            return False
        answer = await self.base.eth_call(
            network, auth.from_, is_valid_signature_data(auth.digest(chain_id), auth.signature)
        )
        return isinstance(answer, str) and answer[2:10] == ERC1271_MAGIC.hex()

    async def proxy_deployed(self, network: str, proxy: str) -> bool:
        """The proxy (and so Permit2 behind it) has code; positives cached."""
        key = (network, proxy.lower())
        if key in self._proxy_code:
            return True
        if await self.base.has_code(network, proxy) and await self.base.has_code(network, p2.PERMIT2_ADDRESS):
            self._proxy_code.add(key)
            return True
        return False

    def settle_sender(self, auth: p2.Permit2Authorization) -> str:
        """Who calls the proxy: the witness's facilitator for ``upto`` (the proxy insists), else our first signer."""
        if auth.facilitator20 is not None:
            return to_checksum_address(auth.facilitator20)
        return self.base.sender

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """All checks; invalid payments are values, RPC trouble raises ChainUnavailable / ChainRejected."""
        parsed = self.static_checks(ctx)
        if isinstance(parsed, VerifyOutcome):
            return parsed
        auth, chain_id, amount = parsed
        network = ctx.requirements.network
        try:
            if not await self.signature_ok(network, auth, chain_id):
                return VerifyOutcome.invalid(
                    reasons.INVALID_PERMIT2_SIGNATURE, "signature does not recover to from", auth.from_
                )
        except X402Error:
            raise
        permit = self.eip2612(ctx, auth)
        if isinstance(permit, VerifyOutcome):
            return permit
        if not simulate:
            return VerifyOutcome(True, payer=auth.from_)
        proxy = p2.UPTO_PROXY_ADDRESS if auth.upto else p2.EXACT_PROXY_ADDRESS
        if not await self.proxy_deployed(network, proxy):
            return VerifyOutcome.invalid(reasons.PERMIT2_PROXY_NOT_DEPLOYED, f"no contract at {proxy}", auth.from_)
        if not await self.base.asset_deployed(network, ctx.requirements.asset):
            return VerifyOutcome.invalid(reasons.ASSET_NOT_DEPLOYED_CONTRACT, "no contract at the asset", auth.from_)
        settle_amount = amount if auth.upto and ctx.phase == "settle" else auth.amount
        reason, message = await self.onchain_checks(network, ctx.requirements.asset, auth, permit, settle_amount)
        if reason is not None:
            return VerifyOutcome.invalid(reason, message, auth.from_)
        return VerifyOutcome(True, payer=auth.from_)

    async def onchain_checks(
        self,
        network: str,
        asset: str,
        auth: p2.Permit2Authorization,
        permit: p2.Eip2612Permit | None,
        settle_amount: int,
    ) -> tuple[str | None, str | None]:
        """Allowance (unless an EIP-2612 permit supplies it), balance, unused nonce and the settle simulation."""
        proxy = p2.UPTO_PROXY_ADDRESS if auth.upto else p2.EXACT_PROXY_ADDRESS
        calls = [
            self.base.eth_call(network, asset, p2.allowance_data(auth.from20, p2.PERMIT2_ADDRESS)),
            self.base.eth_call(network, asset, balance_of_data(auth.from20)),
            self.base.eth_call(network, p2.PERMIT2_ADDRESS, p2.nonce_bitmap_data(auth.from20, auth.nonce)),
        ]
        if settle_amount > 0:
            data = auth.settle_calldata(settle_amount, permit)
            calls.append(self.base.eth_call(network, proxy, data, sender=self.settle_sender(auth)))
        answers = await asyncio.gather(*calls)
        allowance, balance, bitmap = (_uint_or_none(a) for a in answers[:3])
        if permit is None and (allowance is None or allowance < auth.amount):
            return reasons.PERMIT2_ALLOWANCE_REQUIRED, "the payer has not approved Permit2 for the permitted amount"
        if balance is None or balance < settle_amount:
            return reasons.PERMIT2_INSUFFICIENT_BALANCE, f"balance {balance} < {settle_amount}"
        if bitmap is not None and p2.nonce_used(bitmap, auth.nonce):
            return reasons.PERMIT2_INVALID_NONCE, "the Permit2 nonce was already used"
        if len(answers) > 3 and isinstance(answers[3], RpcError):
            revert = answers[3]
            return p2.revert_reason(revert.revert_data) or reasons.PERMIT2_SIMULATION_FAILED, revert.message[:200]
        return None, None


def _uint_or_none(answer: str | RpcError) -> int | None:
    if isinstance(answer, RpcError):
        return None
    try:
        return decode_uint(answer)
    except ValueError:
        return None
