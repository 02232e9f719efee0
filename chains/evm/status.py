"""Has a signed EIP-3009 authorization moved the money? ``authorizationState`` plus the chain's own clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from eth_hash.auto import keccak

from chains.base import PaymentStatus
from chains.evm.rpc import RpcError, RpcPool
from chains.evm.verify import (
    Authorization,
    addr_word,
    authorization_state_data,
    call_params,
    decode_bool,
    parse_authorization,
)
from x402.errors import ChainRejected
from x402.wire.models import PaymentRequirements

AUTHORIZATION_USED_TOPIC: Final = "0x" + keccak(b"AuthorizationUsed(address,bytes32)").hex()
#: How far back the settling transaction is looked for (a hint only: the state decides, not the log).
LOG_LOOKBACK_BLOCKS: Final = 5_000


async def authorization_status(
    pool: RpcPool, payload: Mapping[str, Any], requirements: PaymentRequirements
) -> PaymentStatus:
    """settled when the nonce is used; void when unused and the latest block is at or past validBefore."""
    auth = parse_authorization(payload)
    if not isinstance(auth, Authorization):
        # an unreadable payload could never have been settled by anyone
        return PaymentStatus("void", message=f"unreadable authorization: {auth.message}")
    data = authorization_state_data(auth.from20, auth.nonce)
    try:
        answer = await pool.call("eth_call", [call_params(requirements.asset, data), "latest"])
        used = decode_bool(answer)
    except RpcError as exc:
        raise ChainRejected(f"authorizationState failed: {exc.message}", network=requirements.network) from None
    except ValueError:
        raise ChainRejected("authorizationState returned no bool", network=requirements.network) from None
    if used:
        return PaymentStatus("settled", transaction=await _settling_tx(pool, auth, requirements.asset))
    # checked after the state: a transfer mined between the two reads is seen as settled next time, never voided
    block = await pool.call("eth_getBlockByNumber", ["latest", False])
    now = int(block["timestamp"], 16) if isinstance(block, dict) else 0
    if now >= auth.valid_before:
        # transferWithAuthorization requires block.timestamp < validBefore: nothing can use it any more
        used_late = decode_bool(await pool.call("eth_call", [call_params(requirements.asset, data), "latest"]))
        if used_late:
            return PaymentStatus("settled", transaction=await _settling_tx(pool, auth, requirements.asset))
        return PaymentStatus(
            "void", message=f"unused and expired (validBefore {auth.valid_before} <= block time {now})"
        )
    return PaymentStatus("pending", message=f"unused; valid until {auth.valid_before} (block time {now})")


async def _settling_tx(pool: RpcPool, auth: Authorization, asset: str) -> str | None:
    """The transaction that emitted ``AuthorizationUsed(from, nonce)``, if it is recent enough to find cheaply."""
    try:
        latest = int(await pool.call("eth_blockNumber", []), 16)
        logs = await pool.call(
            "eth_getLogs",
            [
                {
                    "address": asset,
                    "fromBlock": hex(max(0, latest - LOG_LOOKBACK_BLOCKS)),
                    "toBlock": "latest",
                    "topics": [AUTHORIZATION_USED_TOPIC, "0x" + addr_word(auth.from20).hex(), "0x" + auth.nonce.hex()],
                }
            ],
        )
    except (RpcError, ValueError, TypeError):
        return None
    if isinstance(logs, list) and logs and isinstance(logs[-1], dict):
        tx = logs[-1].get("transactionHash")
        return tx if isinstance(tx, str) else None
    return None
