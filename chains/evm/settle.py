"""EVM settlement: build and sign transferWithAuthorization locally, broadcast idempotently, confirm by receipt."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_account.signers.local import LocalAccount

from chains.base import (
    Confirmation,
    NonceTooLow,
    PaymentContext,
    PreparedSettlement,
    SettlementRejected,
    TxCheck,
    TxVerification,
    VerifyOutcome,
)
from chains.evm.eip712 import domain_separator
from chains.evm.rpc import RpcError, RpcPool
from chains.evm.verify import (
    TRANSFER_TOPIC,
    Authorization,
    EvmVerifier,
    call_params,
    hexdata,
    parse_authorization,
    topic_address,
    unwrap_erc6492,
)
from x402.errors import ChainRejected
from x402.wire import reasons
from x402.wire.networks import evm_chain_id

log = logging.getLogger("chains.evm.settle")

GAS_MARGIN_PERCENT: Final = 20
FEE_CACHE_TTL: Final = 3.0
POLL_INTERVAL: Final = 0.25
#: How long settlement waits for an ERC-6492 wallet deployment to be mined.
DEPLOY_TIMEOUT: Final = 60.0
#: The first wait after a broadcast; doubled after each look.
FIRST_POLL_DELAY: Final = 0.005

# verify_transaction reasons (not in the x402 wire inventory: they belong to this service's tx-id check).
TRANSACTION_NOT_FOUND: Final = "transaction_not_found"
TRANSACTION_FAILED: Final = "transaction_failed"
ASSET_MISMATCH: Final = "asset_mismatch"
RECIPIENT_MISMATCH: Final = "recipient_mismatch"
AMOUNT_TOO_LOW: Final = "amount_too_low"
INSUFFICIENT_CONFIRMATIONS: Final = "insufficient_confirmations"

_ALREADY_KNOWN: Final = ("already known", "known transaction", "already imported", "alreadyknown", "already exists")


@dataclass(frozen=True, slots=True)
class _Fees:
    expires: float
    max_fee: int
    priority_fee: int
    legacy_gas_price: int | None


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class EvmSettler:
    """Prepares, broadcasts and confirms settlements from one local signer; reads receipts for tx-id checks."""

    def __init__(self, verifier: EvmVerifier, pools: Mapping[str, RpcPool], account: LocalAccount | None) -> None:
        self.verifier = verifier
        self.pools = pools
        self._account = account
        self._fees: dict[str, _Fees] = {}

    def __repr__(self) -> str:
        return f"EvmSettler(signer={None if self._account is None else self._account.address})"

    def _pool(self, network: str) -> RpcPool:
        pool = self.pools.get(network)
        if pool is None:
            raise ChainRejected(f"network {network} is not configured", network=network)
        return pool

    async def _rpc(self, network: str, method: str, params: list[Any]) -> Any:
        try:
            return await self._pool(network).call(method, params)
        except RpcError as exc:
            raise ChainRejected(f"{method} failed: {exc.message}", network=network) from None

    # -- prepare -----------------------------------------------------------------------------------------------

    async def fees(self, network: str) -> _Fees:
        """EIP-1559 fees (2 x base fee + tip), or a legacy gas price on chains without a base fee; cached briefly."""
        hit = self._fees.get(network)
        now = time.monotonic()
        if hit is not None and hit.expires > now:
            return hit
        block, tip = await asyncio.gather(
            self._rpc(network, "eth_getBlockByNumber", ["latest", False]),
            self._rpc(network, "eth_maxPriorityFeePerGas", []),
        )
        base = block.get("baseFeePerGas") if isinstance(block, dict) else None
        if base is None:
            price = _int(await self._rpc(network, "eth_gasPrice", []))
            fees = _Fees(now + FEE_CACHE_TTL, price, 0, price)
        else:
            priority = _int(tip)
            fees = _Fees(now + FEE_CACHE_TTL, 2 * _int(base) + priority, priority, None)
        self._fees[network] = fees
        return fees

    async def prepare(self, ctx: PaymentContext, nonce_floor: int | None) -> PreparedSettlement:
        """A signed transferWithAuthorization; raises SettlementRejected when its gas estimate reverts."""
        account = self._account
        if account is None:
            from x402.errors import ConfigError

            raise ConfigError("no EVM signer key is configured (X402_EVM_SIGNER_KEY)")
        auth = parse_authorization(ctx.payload)
        if isinstance(auth, VerifyOutcome):
            raise SettlementRejected(auth.reason or reasons.INVALID_PAYLOAD, auth.message, auth.payer)
        network = ctx.requirements.network
        req = ctx.requirements
        chain_id = evm_chain_id(network)
        digest = auth.digest(domain_separator(req.extra["name"], req.extra["version"], chain_id, req.asset))
        eoa = auth.recovers_to_payer(digest)
        data = auth.transfer_calldata(split=eoa)
        signer = account.address
        wrapped = None if eoa else unwrap_erc6492(auth.signature)
        if wrapped is not None and not await self.verifier.has_code(network, auth.from_):
            # ERC-6492: deploy the counterfactual wallet through its (allow-listed, checked by verify) factory first;
            # the transfer then carries the wallet's inner signature and takes the next signer nonce
            nonce_floor = await self._deploy_wallet(network, account, wrapped[0], wrapped[1], nonce_floor, auth)
        try:
            count, fees, estimate = await asyncio.gather(
                self._pool(network).call("eth_getTransactionCount", [signer, "pending"]),
                self.fees(network),
                self._pool(network).call("eth_estimateGas", [call_params(req.asset, data, signer)]),
            )
        except RpcError as exc:
            if not exc.is_revert:
                raise ChainRejected(f"preparing the settlement failed: {exc.message}", network=network) from None
            reason, message = await self.verifier.diagnose(network, req.asset, auth, req.extra, exc)
            raise SettlementRejected(reason, message, auth.from_) from None
        nonce = max(nonce_floor or 0, _int(count))
        gas = _int(estimate) * (100 + GAS_MARGIN_PERCENT) // 100
        tx: dict[str, Any] = {"chainId": chain_id, "nonce": nonce, "to": req.asset, "value": 0, "data": hexdata(data)}
        tx["gas"] = gas
        if fees.legacy_gas_price is not None:
            tx["gasPrice"] = fees.legacy_gas_price
        else:
            tx.update(type=2, maxFeePerGas=fees.max_fee, maxPriorityFeePerGas=fees.priority_fee)
        signed = account.sign_transaction(tx)
        return PreparedSettlement(
            tx_id="0x" + bytes(signed.hash).hex(),
            raw=bytes(signed.raw_transaction),
            signer=signer,
            signer_nonce=nonce,
            valid_until=auth.valid_before,
        )

    async def _deploy_wallet(
        self, network: str, account: Any, factory: str, calldata: bytes, nonce_floor: int | None, auth: Authorization
    ) -> int:
        """Send the factory call of an ERC-6492 signature and wait for it; the next free signer nonce."""
        pool = self._pool(network)
        params = call_params(factory, calldata, account.address)
        try:
            count, fees, estimate = await asyncio.gather(
                pool.call("eth_getTransactionCount", [account.address, "pending"]),
                self.fees(network),
                pool.call("eth_estimateGas", [params]),
            )
        except RpcError as exc:
            raise SettlementRejected(
                reasons.SMART_WALLET_DEPLOYMENT_FAILED, f"the factory call reverts: {exc.message}", auth.from_
            ) from None
        nonce = max(nonce_floor or 0, _int(count))
        tx: dict[str, Any] = {
            "chainId": evm_chain_id(network),
            "nonce": nonce,
            "to": factory,
            "value": 0,
            "data": hexdata(calldata),
            "gas": _int(estimate) * (100 + GAS_MARGIN_PERCENT) // 100,
        }
        if fees.legacy_gas_price is not None:
            tx["gasPrice"] = fees.legacy_gas_price
        else:
            tx.update(type=2, maxFeePerGas=fees.max_fee, maxPriorityFeePerGas=fees.priority_fee)
        signed = account.sign_transaction(tx)
        prepared = PreparedSettlement(
            tx_id="0x" + bytes(signed.hash).hex(), raw=bytes(signed.raw_transaction), signer=account.address
        )
        await self.broadcast(network, prepared)
        conf = await self.confirm(None, network, prepared.tx_id, timeout=DEPLOY_TIMEOUT)
        if conf.status != "confirmed" or not await self.verifier.has_code(network, auth.from_):
            raise SettlementRejected(
                reasons.SMART_WALLET_DEPLOYMENT_FAILED,
                f"deploying the payer's wallet ({prepared.tx_id}) did not give it code: {conf.status}",
                auth.from_,
            )
        log.info("erc6492 wallet %s deployed in %s", auth.from_, prepared.tx_id)
        return nonce + 1

    # -- broadcast ---------------------------------------------------------------------------------------------

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """eth_sendRawTransaction; "already known" is success, "nonce too low" is success only if it is our tx."""
        try:
            answer = await self._pool(network).call("eth_sendRawTransaction", ["0x" + prepared.raw.hex()])
        except RpcError as exc:
            msg = exc.message.lower()
            if any(k in msg for k in _ALREADY_KNOWN):
                return
            if "nonce too low" in msg or "nonce is too low" in msg or "oldnonce" in msg.replace(" ", ""):
                if await self._pool(network).call("eth_getTransactionByHash", [prepared.tx_id]) is not None:
                    return
                raise NonceTooLow(
                    f"signer nonce {prepared.signer_nonce} was used by another transaction", network=network
                ) from None
            raise ChainRejected(f"eth_sendRawTransaction failed: {exc.message}", network=network) from None
        if isinstance(answer, str) and answer.lower() != prepared.tx_id.lower():
            log.error("node reported tx hash %s for prepared %s", answer, prepared.tx_id)

    # -- confirm -----------------------------------------------------------------------------------------------

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, timeout: float) -> Confirmation:
        """Poll for the receipt (first look at once) until ``timeout``; "unknown" when the node has never seen it."""
        pool = self._pool(network)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        first = True
        delay = FIRST_POLL_DELAY
        while True:
            receipt = await pool.call("eth_getTransactionReceipt", [tx_id])
            if receipt is not None:
                return self._judge(ctx, receipt)
            if first or loop.time() >= deadline:
                # A settlement just broadcast is known to the node; an unknown hash needs a re-broadcast, so say
                # so at once instead of waiting out the timeout.
                if await pool.call("eth_getTransactionByHash", [tx_id]) is None:
                    return Confirmation("unknown", message="the node does not know this transaction")
                if loop.time() >= deadline:
                    return Confirmation("pending", reason=reasons.SETTLEMENT_PENDING)
                first = False
            # short first waits catch instant-mining and fast L2s; then back off to POLL_INTERVAL
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
            delay = min(delay * 2, POLL_INTERVAL)

    def _judge(self, ctx: PaymentContext | None, receipt: Mapping[str, Any]) -> Confirmation:
        block = _int(receipt["blockNumber"]) if receipt.get("blockNumber") is not None else None
        if _int(receipt.get("status", 0)) != 1:
            return Confirmation(
                "failed",
                reason=reasons.INVALID_EXACT_EVM_TRANSACTION_FAILED,
                message="transaction reverted",
                block=block,
            )
        if ctx is None:
            return Confirmation("confirmed", block=block)
        auth = parse_authorization(ctx.payload)
        if isinstance(auth, Authorization) and _has_transfer(receipt, ctx.requirements.asset, auth):
            return Confirmation("confirmed", amount=auth.value, block=block)
        return Confirmation(
            "failed",
            reason=reasons.INVALID_EXACT_EVM_TRANSFER_EVENT_MISMATCH,
            message="no matching Transfer event in the receipt",
            block=block,
        )

    # -- verify by transaction id ------------------------------------------------------------------------------

    async def verify_transaction(self, check: TxCheck) -> TxVerification:
        """A plain ERC-20 payment by tx id: mined, succeeded, enough ``asset`` to ``pay_to``, enough confirmations."""
        pool = self._pool(check.network)
        receipt, head = await asyncio.gather(
            pool.call("eth_getTransactionReceipt", [check.tx_id]), pool.call("eth_blockNumber", [])
        )
        if receipt is None:
            if await pool.call("eth_getTransactionByHash", [check.tx_id]) is None:
                return TxVerification("invalid", reason=TRANSACTION_NOT_FOUND)
            return TxVerification("pending", reason=INSUFFICIENT_CONFIRMATIONS)
        block = _int(receipt["blockNumber"])
        if _int(receipt.get("status", 0)) != 1:
            return TxVerification("invalid", reason=TRANSACTION_FAILED, block=block)
        asset = check.asset.lower()
        pay_to = check.pay_to.lower()
        total = 0
        payer: str | None = None
        seen_asset = False
        for entry in receipt.get("logs") or ():
            topics: list[str] = entry.get("topics") or []
            if len(topics) != 3 or topics[0] != TRANSFER_TOPIC or str(entry.get("address", "")).lower() != asset:
                continue
            seen_asset = True
            if topic_address(topics[2]) != pay_to:
                continue
            total += _int(entry.get("data") or "0x0")
            payer = payer or topic_address(topics[1])
        if not seen_asset:
            return TxVerification("invalid", reason=ASSET_MISMATCH, block=block)
        if payer is None:
            return TxVerification("invalid", reason=RECIPIENT_MISMATCH, block=block)
        confirmations = _int(head) - block + 1
        if total < check.min_amount:
            return TxVerification(
                "invalid", amount=total, payer=payer, confirmations=confirmations, reason=AMOUNT_TOO_LOW, block=block
            )
        verified = confirmations >= check.confirmations
        return TxVerification(
            "verified" if verified else "pending",
            amount=total,
            payer=payer,
            confirmations=confirmations,
            reason=None if verified else INSUFFICIENT_CONFIRMATIONS,
            block=block,
        )


def _has_transfer(receipt: Mapping[str, Any], asset: str, auth: Authorization) -> bool:
    """True when the receipt holds the token's Transfer(from, to, value) for this authorization."""
    want_from = "0x" + auth.from20.hex()
    want_to = "0x" + auth.to20.hex()
    for entry in receipt.get("logs") or ():
        topics: list[str] = entry.get("topics") or []
        if (
            len(topics) == 3
            and topics[0] == TRANSFER_TOPIC
            and str(entry.get("address", "")).lower() == asset.lower()
            and topic_address(topics[1]) == want_from
            and topic_address(topics[2]) == want_to
            and _int(entry.get("data") or "0x0") == auth.value
        ):
            return True
    return False
