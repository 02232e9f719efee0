"""The Solana adapter (chains/solana) on LiteSVM behind JSON-RPC under the shared ChainAdapter conformance suite."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID

from chains.base import ChainAdapter, PaymentContext
from chains.config import NetworkConfig
from chains.solana.adapter import SolanaAdapter
from chains.solana.payer import create_payment, encode_payload, payment_instructions, sign_partially
from tests.conformance.kit import Fault, KitPayment
from tests.conformance.suite import AdapterConformance
from tests.harness.services import free_port
from tests.solana.conftest import NETWORK, PRICE, World, make_world
from tests.solana.test_verify_tx import pay
from x402.wire import reasons as R
from x402.wire.models import PaymentRequirements


@dataclass
class SolanaKit:
    """A fresh LiteSVM chain with a USDC-like SPL mint, a funded payer, payTo's token account and our fee payer."""

    world: World
    network: str = NETWORK
    rejections: Mapping[Fault, str] = field(
        default_factory=lambda: {
            "wrong_amount": R.INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH,
            "wrong_pay_to": R.INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH,
            "wrong_asset": R.INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH,
            "wrong_network": R.INVALID_EXACT_SVM_NETWORK_MISMATCH,
            # a transaction's validity window is its blockhash: simulation refuses an expired one
            "expired": R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED,
            "bad_signature": R.INVALID_EXACT_SVM_PAYLOAD_SIGNATURE_INVALID,
            "insufficient_balance": R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED,
        }
    )
    replay_reason: str = R.INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED
    documented_reasons: bool = True
    unknown_tx_id: str = str(Signature.default())

    @property
    def adapter(self) -> ChainAdapter:
        return self.world.adapter

    def _build(self, reqs: PaymentRequirements) -> dict[str, Any]:
        w = self.world
        ixs = payment_instructions(w.payer.pubkey(), reqs, token_program=w.program, decimals=6)
        return encode_payload(sign_partially(w.payer, w.fee_payer.pubkey(), ixs, w.rpc.svm.latest_blockhash()))

    async def payment(self) -> KitPayment:
        w = self.world
        payload = await create_payment(w.rpc.url, w.payer, w.requirements())
        return KitPayment(w.ctx(payload), str(w.payer.pubkey()), str(w.pay_to.pubkey()), PRICE)

    async def faulty(self, fault: Fault) -> PaymentContext:
        w = self.world
        match fault:
            case "wrong_amount":
                return w.ctx(self._build(w.requirements(amount=str(PRICE - 1))))
            case "wrong_pay_to":
                stranger = Keypair().pubkey()
                w.rpc.create_ata(stranger, w.mint, w.program)
                return w.ctx(self._build(w.requirements(pay_to=str(stranger))))
            case "wrong_asset":
                other = w.rpc.create_mint(w.mint_authority, 6, w.program)
                return w.ctx(self._build(w.requirements()), w.requirements(asset=str(other)))
            case "wrong_network":
                mainnet = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
                return w.ctx(self._build(w.requirements()), w.requirements(network=mainnet))
            case "expired":
                payload = self._build(w.requirements())
                w.rpc.svm.expire_blockhash()
                return w.ctx(payload)
            case "bad_signature":
                tx = VersionedTransaction.from_bytes(base64.b64decode(self._build(w.requirements())["transaction"]))
                sigs = list(tx.signatures)
                raw = bytearray(bytes(sigs[1]))  # the payer's signature (0 is the fee payer's slot)
                raw[0] ^= 1
                sigs[1] = Signature.from_bytes(bytes(raw))
                tx.signatures = sigs
                return w.ctx(encode_payload(tx))
            case "insufficient_balance":
                reqs = w.requirements(amount=str(10**12))
                return w.ctx(self._build(reqs), reqs)

    async def balance(self, owner: str) -> int:
        return self.world.rpc.token_balance(self.world.ata(Pubkey.from_string(owner)))

    async def transfer(self, amount: int) -> tuple[str, str]:
        w = self.world
        return pay(w, w.pay_to.pubkey(), amount), str(w.payer.pubkey())

    def new_address(self) -> str:
        return str(Keypair().pubkey())

    def asset(self) -> str:
        return str(self.world.mint)

    async def failover_adapter(self, *, alive: bool) -> ChainAdapter:
        dead = f"http://127.0.0.1:{free_port()}"
        urls = (dead, self.world.rpc.url) if alive else (dead,)
        return SolanaAdapter(
            [NetworkConfig(NETWORK, urls)], [self.world.fee_payer], rpc_timeout=2.0, poll_interval=0.02
        )


class TestSolanaConformance(AdapterConformance):
    """SolanaAdapter on a fresh LiteSVM chain per test."""

    @pytest.fixture
    async def kit(self) -> AsyncIterator[SolanaKit]:
        w = await make_world(TOKEN_PROGRAM_ID)
        yield SolanaKit(w)
        await w.adapter.close()
        await w.rpc.stop()
