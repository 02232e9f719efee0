"""Verify a plain on-chain payment by transaction id; each transaction is accepted once per tenant and payTo.

A payTo that a tenant claimed (``payto_claims``, proved by signature) is verified for that tenant only; every
other caller gets 403 ``payto_claimed``, so nobody can "use up" or watch another merchant's payments. A verified
transaction then goes through the risk stage, as ``/verify`` does (``risk`` in the answer; a block is
``reason: risk_blocked``).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from chains.base import TxCheck
from chains.registry import ChainRegistry
from risk.engine import RiskEngine
from risk.model import RISK_BLOCKED, RiskContext
from x402.errors import BadRequest, Forbidden
from x402.service.storage.scope import system_scope
from x402.wire.models import decode_json, parse_amount
from x402.wire.networks import to_caip2


class VerifyTxRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Body of ``POST /v1/payments/verify-tx``."""

    network: str
    transaction: str
    pay_to: str
    asset: str
    min_amount: str
    confirmations: int = 1


def _check(body: bytes) -> TxCheck:
    req = decode_json(body, VerifyTxRequest)
    if not req.transaction or len(req.transaction) > 200:
        raise BadRequest("transaction must be a transaction hash or signature", code="invalid_transaction")
    if not 0 <= req.confirmations <= 1000:
        raise BadRequest("confirmations must be between 0 and 1000", code="invalid_confirmations")
    return TxCheck(
        network=to_caip2(req.network),
        tx_id=req.transaction,
        pay_to=req.pay_to,
        asset=req.asset,
        min_amount=parse_amount(req.min_amount),
        confirmations=req.confirmations,
    )


def _norm(network: str, value: str) -> str:
    """EVM hashes and addresses compare case-insensitively; Solana's base58 is case-sensitive."""
    return value.lower() if network.startswith("eip155:") else value


async def _check_claim(pool: asyncpg.Pool, pay_to: str, tenant_id: str | None) -> None:
    """403 ``payto_claimed`` when another tenant proved it owns this payTo (``pay_to`` normalised)."""
    with system_scope("verify-tx: a payTo claimed by another tenant is refused, so its claim must be seen"):
        owner = await pool.fetchval("SELECT tenant_id FROM payto_claims WHERE address = $1", pay_to)
    if owner is not None and str(owner) != tenant_id:
        raise Forbidden("this payTo is claimed by another tenant", code="payto_claimed")


async def verify_transaction(
    registry: ChainRegistry,
    pool: asyncpg.Pool,
    body: bytes,
    *,
    tenant_id: str | None = None,
    risk: RiskEngine | None = None,
) -> dict[str, Any]:
    """Check the transaction on chain, screen it, then record it so it is accepted once per tenant and payTo."""
    check = _check(body)
    await _check_claim(pool, _norm(check.network, check.pay_to), tenant_id)
    adapter = registry.get(check.network)
    result = await adapter.verify_transaction(check)
    answer: dict[str, Any] = {
        "verified": False,
        "status": result.status,
        "network": check.network,
        "transaction": check.tx_id,
        "amount": str(result.amount),
        "confirmations": result.confirmations,
    }
    if result.payer:
        answer["payer"] = result.payer
    if result.reason:
        answer["reason"] = result.reason
    if result.status != "verified":
        return answer
    tx_id, pay_to = _norm(check.network, check.tx_id), _norm(check.network, check.pay_to)
    ctx = RiskContext(
        network=check.network,
        asset=check.asset,
        payer=result.payer or "",
        pay_to=check.pay_to,
        amount=result.amount,
        tenant_id=tenant_id,
        payment_id=f"{check.network}:tx:{tx_id}:{pay_to}",
        scheme="transaction",
    )
    if risk is not None:
        assessment = await risk.assess(ctx)
        answer["risk"] = assessment.to_wire()
        if assessment.blocked:
            answer.update(status="invalid", reason=RISK_BLOCKED)
            return answer
    row = await pool.fetchval(
        """INSERT INTO verified_transactions (tenant_id, network, tx_id, pay_to, asset, payer, amount, block_number)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT ON CONSTRAINT verified_transactions_once DO NOTHING RETURNING id""",
        uuid.UUID(tenant_id) if tenant_id else None,
        check.network,
        tx_id,
        pay_to,
        check.asset,
        result.payer,
        result.amount,
        result.block,
    )
    if row is None:
        answer.update(status="invalid", reason="transaction_already_used")
        return answer
    answer["verified"] = True
    if risk is not None:
        await risk.record(ctx)
    return answer
