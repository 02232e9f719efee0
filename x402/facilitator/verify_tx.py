"""Verify a plain on-chain payment by transaction id; each transaction is accepted once per payTo."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from chains.base import TxCheck
from chains.registry import ChainRegistry
from x402.errors import BadRequest
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


async def verify_transaction(registry: ChainRegistry, pool: asyncpg.Pool, body: bytes) -> dict[str, Any]:
    """Check the transaction on chain, then record it so the same one is never accepted twice for a payTo."""
    check = _check(body)
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
    row = await pool.fetchval(
        """INSERT INTO verified_transactions (network, tx_id, pay_to, asset, payer, amount, block_number)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT ON CONSTRAINT verified_transactions_once DO NOTHING RETURNING id""",
        check.network,
        check.tx_id.lower() if check.network.startswith("eip155:") else check.tx_id,
        check.pay_to.lower() if check.network.startswith("eip155:") else check.pay_to,
        check.asset,
        result.payer,
        result.amount,
        result.block,
    )
    if row is None:
        answer.update(status="invalid", reason="transaction_already_used")
        return answer
    answer["verified"] = True
    return answer
