"""The EVM adapter (chains/evm) on anvil under the shared ChainAdapter conformance suite."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from chains.base import ChainAdapter, PaymentContext
from chains.evm.adapter import EvmAdapter
from chains.evm.devchain import DevChain
from tests.conformance.kit import Fault, KitPayment
from tests.conformance.suite import AdapterConformance
from tests.evm.test_verify_tx import transfer
from tests.harness.evm import (
    Payment,
    address_of,
    dev_network,
    fund_eth,
    funded_payer,
    new_key,
    requirements,
    sign_payment,
    token_balance,
)
from tests.harness.services import free_port
from x402.wire import reasons as R

PRICE = 10_000


def ctx_of(payment: Payment) -> PaymentContext:
    """The context the facilitator builds for a signed v2 payment."""
    req = payment.requirements
    return PaymentContext(2, "exact", req.network, payment.payload.payload, req, accepted=payment.payload.accepted)


@dataclass
class EvmKit:
    """The dev chain's kit: an adapter with a fresh gas-funded signer, a funded payer and a fresh payee."""

    chain: DevChain
    adapter: EvmAdapter
    signer_key: str
    payer_key: str
    pay_to: str = field(default_factory=lambda: address_of(new_key()))
    rejections: Mapping[Fault, str] = field(
        default_factory=lambda: {
            "wrong_amount": R.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALUE_MISMATCH,
            "wrong_pay_to": R.INVALID_EXACT_EVM_RECIPIENT_MISMATCH,
            # EIP-3009 binds the token only through the EIP-712 domain (verifyingContract)
            "wrong_asset": R.INVALID_EXACT_EVM_SIGNATURE,
            "wrong_network": R.INVALID_EXACT_EVM_NETWORK_MISMATCH,
            "expired": R.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_BEFORE,
            "bad_signature": R.INVALID_EXACT_EVM_SIGNATURE,
            "insufficient_balance": R.INVALID_EXACT_EVM_INSUFFICIENT_BALANCE,
        }
    )
    replay_reason: str = R.INVALID_EXACT_EVM_NONCE_ALREADY_USED
    documented_reasons: bool = True
    unknown_tx_id: str = "0x" + "ab" * 32

    @property
    def network(self) -> str:
        return self.chain.network

    def _sign(self, key: str | None = None, **kw: Any) -> Payment:
        return sign_payment(self.chain, key or self.payer_key, requirements(self.chain, self.pay_to, PRICE), **kw)

    async def payment(self) -> KitPayment:
        p = self._sign()
        return KitPayment(ctx_of(p), p.payer, self.pay_to, PRICE)

    async def faulty(self, fault: Fault) -> PaymentContext:
        match fault:
            case "wrong_amount":
                return ctx_of(self._sign(value=PRICE - 1))
            case "wrong_pay_to":
                return ctx_of(self._sign(to=address_of(new_key())))
            case "wrong_asset":
                return ctx_of(self._sign(verifying_contract=address_of(new_key())))
            case "wrong_network":
                p = self._sign()
                other = msgspec.structs.replace(p.requirements, network="eip155:8453")
                return PaymentContext(2, "exact", other.network, p.payload.payload, other, p.payload.accepted)
            case "expired":
                return ctx_of(self._sign(valid_before=int(time.time()) - 10))
            case "bad_signature":
                p = self._sign(new_key())  # signed by a stranger, claimed to be from the payer
                p.payload.payload["authorization"]["from"] = address_of(self.payer_key)
                return ctx_of(p)
            case "insufficient_balance":
                return ctx_of(self._sign(new_key()))

    async def balance(self, owner: str) -> int:
        return await token_balance(self.chain, owner)

    async def transfer(self, amount: int) -> tuple[str, str]:
        return await transfer(self.chain, self.payer_key, self.pay_to, amount), address_of(self.payer_key)

    def new_address(self) -> str:
        return address_of(new_key())

    def asset(self) -> str:
        return self.chain.token_address

    async def failover_adapter(self, *, alive: bool) -> ChainAdapter:
        dead = f"http://127.0.0.1:{free_port()}"
        urls = (dead, self.chain.rpc_url) if alive else (dead,)
        return EvmAdapter([dev_network(self.chain, rpc_urls=urls)], signer_key=self.signer_key, rpc_timeout=2.0)


class TestEvmConformance(AdapterConformance):
    """EvmAdapter on the session anvil."""

    @pytest.fixture
    async def kit(self, devchain: DevChain) -> AsyncIterator[EvmKit]:
        signer_key = new_key()
        await fund_eth(devchain, address_of(signer_key))
        adapter = EvmAdapter([dev_network(devchain)], signer_key=signer_key, rpc_timeout=5.0)
        yield EvmKit(devchain, adapter, signer_key, await funded_payer(devchain))
        await adapter.close()
