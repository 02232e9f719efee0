"""Has a signed EIP-3009 authorization moved the money? ``authorizationState`` plus the chain's own clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from eth_hash.auto import keccak

from chains.base import PaymentStatus
from chains.evm import permit2 as p2
from chains.evm.rpc import RpcError, RpcPool
from chains.evm.verify import (
    Authorization,
    addr_word,
    authorization_state_data,
    call_params,
    decode_bool,
    decode_uint,
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


async def permit2_status(pool: RpcPool, payload: Mapping[str, Any]) -> PaymentStatus:
    """Permit2 (``exact`` by Permit2, ``upto``): settled when its nonce bit is set in Permit2's ``nonceBitmap``;
    void when unused and the latest block is past the deadline (an ``upto`` settled for 0 ends void too)."""
    try:
        auth = p2.parse_permit2(payload)
    except ValueError as exc:
        return PaymentStatus("void", message=f"unreadable Permit2 authorization: {exc}")
    data = p2.nonce_bitmap_data(auth.from20, auth.nonce)

    async def used() -> bool:
        try:
            return p2.nonce_used(
                decode_uint(await pool.call("eth_call", [call_params(p2.PERMIT2_ADDRESS, data), "latest"])), auth.nonce
            )
        except RpcError as exc:
            raise ChainRejected(f"nonceBitmap failed: {exc.message}", network=pool.network) from None
        except ValueError:
            raise ChainRejected("nonceBitmap returned no uint256", network=pool.network) from None

    if await used():
        return PaymentStatus("settled")
    block = await pool.call("eth_getBlockByNumber", ["latest", False])
    now = int(block["timestamp"], 16) if isinstance(block, dict) else 0
    if now > auth.deadline:  # Permit2 refuses block.timestamp > deadline
        if await used():
            return PaymentStatus("settled")
        return PaymentStatus("void", message=f"unused and expired (deadline {auth.deadline} < block time {now})")
    return PaymentStatus("pending", message=f"unused; valid until {auth.deadline} (block time {now})")
