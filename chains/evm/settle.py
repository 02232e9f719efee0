"""EVM settlement: build and sign transferWithAuthorization locally, broadcast idempotently, confirm by receipt."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import coincurve
from eth_account.signers.local import LocalAccount

from chains.base import (
    Confirmation,
    LaneState,
    NonceTooLow,
    PaymentContext,
    PreparedSettlement,
    SettlementRejected,
    SignerOutOfGas,
    TxCheck,
    TxVerification,
    Underpriced,
    VerifyOutcome,
)
from chains.evm import permit2 as p2
from chains.evm.eip712 import domain_separator
from chains.evm.permit2 import is_permit2_payload
from chains.evm.receipts import ReceiptWatcher
from chains.evm.rpc import RpcError, RpcPool
from chains.evm.txsign import sign_type2
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
#: The node-limit loop of bench/settle.py polls like a naive client: first after FIRST_POLL_DELAY, doubling to this.
POLL_INTERVAL: Final = 0.25
#: How long settlement waits for an ERC-6492 wallet deployment to be mined.
DEPLOY_TIMEOUT: Final = 60.0
#: The first wait of that loop; doubled after each look.
FIRST_POLL_DELAY: Final = 0.005

# verify_transaction reasons (not in the x402 wire inventory: they belong to this service's tx-id check).
TRANSACTION_NOT_FOUND: Final = "transaction_not_found"
TRANSACTION_FAILED: Final = "transaction_failed"
ASSET_MISMATCH: Final = "asset_mismatch"
RECIPIENT_MISMATCH: Final = "recipient_mismatch"
AMOUNT_TOO_LOW: Final = "amount_too_low"
INSUFFICIENT_CONFIRMATIONS: Final = "insufficient_confirmations"

_ALREADY_KNOWN: Final = ("already known", "known transaction", "already imported", "alreadyknown", "already exists")
#: Node answers meaning the sender cannot pay gas * price + value (geth, anvil, erigon, nethermind spellings).
_NO_FUNDS: Final = ("insufficient funds", "insufficient balance for transfer", "sender doesn't have enough funds")
#: Node answers meaning the fees are too low: below the base fee, or too low to replace the pooled transaction.
_UNDERPRICED: Final = ("underpriced", "less than block base fee", "fee cap less than", "fee too low")
#: A replacement pays at least this much more (geth's pool asks for +10 % on both the fee cap and the tip).
BUMP_PERCENT: Final = 125
SELF_TRANSFER_GAS: Final = 21_000
#: Receipts fetched with their broadcast and not yet taken by ``confirm`` (bounded: a resend is never confirmed).
EARLY_RECEIPTS: Final = 1024

_TX_HASH: Final = re.compile(r"0x[0-9a-fA-F]{64}")


def is_out_of_funds(message: str) -> bool:
    """True when a node's error says the sender cannot pay for gas."""
    low = message.lower()
    return any(k in low for k in _NO_FUNDS)


def _bumped(old: int) -> int:
    return old * BUMP_PERCENT // 100 + 1


@dataclass(frozen=True, slots=True)
class _Fees:
    expires: float
    max_fee: int
    priority_fee: int
    legacy_gas_price: int | None


@dataclass(frozen=True, slots=True)
class _Call:
    """The contract call a settlement makes, and how to explain its revert."""

    to: str
    data: bytes
    valid_until: int
    payer: str
    diagnose: Callable[[RpcError], Awaitable[tuple[str, str]]]
    #: (factory, calldata) of an ERC-6492 wallet to deploy first
    deploy: tuple[str, bytes] | None = None
    auth: Authorization | None = None


@dataclass(frozen=True, slots=True)
class _Draft:
    """A priced, funded settlement transaction lacking only its nonce (``chains.base.SettlementDraft``)."""

    account: LocalAccount
    tx: Mapping[str, Any]
    valid_until: int
    #: the signer's key for the direct type-2 path (chains/evm/txsign.py); None signs through eth-account
    key: coincurve.PrivateKey | None = None

    def sign(self, nonce: int) -> PreparedSettlement:
        tx = self.tx
        if self.key is not None and tx.get("type") == 2 and not tx.get("accessList"):
            fast = sign_type2(
                self.key,
                chain_id=int(tx["chainId"]),
                nonce=nonce,
                max_priority_fee=int(tx["maxPriorityFeePerGas"]),
                max_fee=int(tx["maxFeePerGas"]),
                gas=int(tx["gas"]),
                to=bytes.fromhex(str(tx["to"]).removeprefix("0x")),
                value=int(tx["value"]),
                data=bytes.fromhex(str(tx["data"]).removeprefix("0x")),
            )
            raw, tx_hash = fast.raw, fast.tx_hash
        else:
            signed = self.account.sign_transaction({**tx, "nonce": nonce})
            raw, tx_hash = bytes(signed.raw_transaction), bytes(signed.hash)
        return PreparedSettlement(
            tx_id="0x" + tx_hash.hex(),
            raw=raw,
            signer=self.account.address,
            signer_nonce=nonce,
            valid_until=self.valid_until,
        )


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class EvmSettler:
    """Prepares, broadcasts and confirms settlements from one local signer; reads receipts for tx-id checks."""

    def __init__(
        self, verifier: EvmVerifier, pools: Mapping[str, RpcPool], accounts: LocalAccount | list[LocalAccount] | None
    ) -> None:
        self.verifier = verifier
        self.pools = pools
        if accounts is None:
            accounts = []
        elif not isinstance(accounts, list):
            accounts = [accounts]
        self._accounts = {a.address.lower(): a for a in accounts}
        self._account = accounts[0] if accounts else None
        self._fees: dict[str, _Fees] = {}
        self._keys: dict[str, coincurve.PrivateKey] = {}
        self._watchers: dict[str, ReceiptWatcher] = {}
        self._early: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"EvmSettler(signers={[a.address for a in self._accounts.values()]})"

    def account(self, signer: str | None) -> LocalAccount:
        """The local account of a signer address (the first one when None); ConfigError when there is none."""
        from x402.errors import ConfigError

        if signer is None:
            if self._account is None:
                raise ConfigError("no EVM signer key is configured (X402_EVM_SIGNER_KEYS)")
            return self._account
        account = self._accounts.get(signer.lower())
        if account is None:
            raise ConfigError(f"{signer} is not one of the configured EVM signer keys")
        return account

    def _key(self, account: LocalAccount) -> coincurve.PrivateKey:
        """The account's secp256k1 key for direct signing (made once per signer)."""
        key = self._keys.get(account.address)
        if key is None:
            key = self._keys[account.address] = coincurve.PrivateKey(bytes(account.key))
        return key

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

    async def fees(self, network: str, *, fresh: bool = False) -> _Fees:
        """EIP-1559 fees (2 x base fee + tip), or a legacy gas price on chains without a base fee; cached briefly."""
        hit = self._fees.get(network)
        now = time.monotonic()
        if hit is not None and hit.expires > now and not fresh:
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

    async def prepare(
        self, ctx: PaymentContext, nonce_floor: int | None, signer_address: str | None = None
    ) -> PreparedSettlement:
        """A signed transferWithAuthorization; raises SettlementRejected when its gas estimate reverts."""
        account = self.account(signer_address)
        call = await self._call(ctx)
        network = ctx.requirements.network
        if call.deploy is not None:
            # ERC-6492: deploy the counterfactual wallet through its (allow-listed, checked by verify) factory first;
            # the transfer then carries the wallet's inner signature and takes the next signer nonce
            assert call.auth is not None
            nonce_floor = await self._deploy_wallet(network, account, *call.deploy, nonce_floor, call.auth)
        draft, count = await self._draft_call(network, account, call, pending_count=True)
        return draft.sign(max(nonce_floor or 0, count or 0))

    async def draft(self, ctx: PaymentContext, signer_address: str) -> _Draft | None:
        """The settlement from ``signer_address`` estimated, priced and checked, not signed; None when it must
        deploy the payer's wallet first (that takes a nonce, so ``prepare`` does it under the lane's lock)."""
        account = self.account(signer_address)
        call = await self._call(ctx)
        if call.deploy is not None:
            return None
        draft, _ = await self._draft_call(ctx.requirements.network, account, call, pending_count=False)
        return draft

    async def _call(self, ctx: PaymentContext) -> _Call:
        """What the settlement calls: transferWithAuthorization, or the Permit2 proxy's settle."""
        if is_permit2_payload(ctx.payload):
            return self._permit2_call(ctx)
        auth = parse_authorization(ctx.payload)
        if isinstance(auth, VerifyOutcome):
            raise SettlementRejected(auth.reason or reasons.INVALID_PAYLOAD, auth.message, auth.payer)
        network = ctx.requirements.network
        req = ctx.requirements
        chain_id = evm_chain_id(network)
        digest = auth.digest(domain_separator(req.extra["name"], req.extra["version"], chain_id, req.asset))
        eoa = auth.recovers_to_payer(digest)
        data = auth.transfer_calldata(split=eoa)
        wrapped = None if eoa else unwrap_erc6492(auth.signature)
        deploy = None
        if wrapped is not None and not await self.verifier.has_code(network, auth.from_):
            deploy = (wrapped[0], wrapped[1])

        async def diagnose(exc: RpcError) -> tuple[str, str]:
            return await self.verifier.diagnose(network, req.asset, auth, req.extra, exc)

        return _Call(req.asset, data, auth.valid_before, auth.from_, diagnose, deploy, auth)

    def _permit2_call(self, ctx: PaymentContext) -> _Call:
        """The x402 proxy's settle (``settleWithPermit`` with an EIP-2612 permit) for the settlement amount."""
        try:
            auth = p2.parse_permit2(ctx.payload)
            permit = p2.parse_eip2612(ctx.extensions)
        except ValueError as exc:
            raise SettlementRejected(
                reasons.INVALID_PERMIT2_PAYLOAD_FORMAT, str(exc), p2.payer_of(ctx.payload)
            ) from None
        amount = int(ctx.requirements.amount) if auth.upto else auth.amount
        proxy = p2.UPTO_PROXY_ADDRESS if auth.upto else p2.EXACT_PROXY_ADDRESS
        failed = reasons.INVALID_UPTO_EVM_TRANSACTION_FAILED if auth.upto else reasons.PERMIT2_SIMULATION_FAILED

        async def diagnose(exc: RpcError) -> tuple[str, str]:
            return p2.revert_reason(exc.revert_data) or failed, exc.message[:200]

        return _Call(proxy, auth.settle_calldata(amount, permit), auth.deadline, auth.from_, diagnose)

    async def _draft_call(
        self, network: str, account: LocalAccount, call: _Call, *, pending_count: bool
    ) -> tuple[_Draft, int | None]:
        """Estimate, price and check funds for ``call`` from ``account`` (and read its pending transaction count
        when asked); a reverting estimate raises SettlementRejected."""
        signer = account.address
        pool = self._pool(network)

        async def count() -> Any:
            return await pool.call("eth_getTransactionCount", [signer, "pending"]) if pending_count else None

        try:
            pending, fees, estimate, balance = await asyncio.gather(
                count(),
                self.fees(network),
                pool.call("eth_estimateGas", [call_params(call.to, call.data, signer)]),
                pool.call("eth_getBalance", [signer, "pending"]),
            )
        except RpcError as exc:
            if is_out_of_funds(exc.message):
                raise SignerOutOfGas(
                    f"the facilitator signer cannot pay gas: {exc.message}", network=network, signer=signer
                ) from None
            if not exc.is_revert:
                raise ChainRejected(f"preparing the settlement failed: {exc.message}", network=network) from None
            reason, message = await call.diagnose(exc)
            raise SettlementRejected(reason, message, call.payer) from None
        gas = _int(estimate) * (100 + GAS_MARGIN_PERCENT) // 100
        tx: dict[str, Any] = {
            "chainId": evm_chain_id(network),
            "to": call.to,
            "value": 0,
            "data": hexdata(call.data),
            "gas": gas,
        }
        _set_fees(tx, fees.legacy_gas_price, fees.max_fee, fees.priority_fee)
        self._check_funds(network, signer, tx, _int(balance))
        return _Draft(account, tx, call.valid_until, self._key(account)), (None if pending is None else _int(pending))

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

    @staticmethod
    def _check_funds(network: str, signer: str, tx: Mapping[str, Any], balance: int) -> None:
        """Refuse to sign what the node would refuse: gas limit x fee cap + value above the signer's balance."""
        need = int(tx["gas"]) * int(tx.get("maxFeePerGas", tx.get("gasPrice", 0))) + int(tx.get("value", 0))
        if balance < need:
            raise SignerOutOfGas(
                f"the facilitator signer {signer} holds {balance} wei, the transaction needs up to {need}",
                network=network,
                signer=signer,
            )

    # -- nonce lanes -------------------------------------------------------------------------------------------

    async def lane_state(self, network: str, signer: str) -> LaneState:
        """Mined and pending transaction counts of ``signer`` and the latest block's timestamp."""
        pool = self._pool(network)
        mined, pending, block = await asyncio.gather(
            pool.call("eth_getTransactionCount", [signer, "latest"]),
            pool.call("eth_getTransactionCount", [signer, "pending"]),
            pool.call("eth_getBlockByNumber", ["latest", False]),
        )
        stamp = block.get("timestamp") if isinstance(block, dict) else None
        return LaneState(_int(mined), _int(pending), _int(stamp) if stamp is not None else int(time.time()))

    async def tx_known(self, network: str, tx_id: str) -> bool:
        """eth_getTransactionByHash answers something."""
        return await self._pool(network).call("eth_getTransactionByHash", [tx_id]) is not None

    async def _signed(self, network: str, account: LocalAccount, tx: dict[str, Any], nonce: int) -> PreparedSettlement:
        balance = _int(await self._pool(network).call("eth_getBalance", [account.address, "pending"]))
        self._check_funds(network, account.address, tx, balance)
        signed = account.sign_transaction(tx)
        return PreparedSettlement(
            tx_id="0x" + bytes(signed.hash).hex(),
            raw=bytes(signed.raw_transaction),
            signer=account.address,
            signer_nonce=nonce,
        )

    async def prepare_fill(
        self, network: str, signer: str, nonce: int, *, above: bytes | None = None
    ) -> PreparedSettlement:
        """A zero-value transfer from the signer to itself at ``nonce`` (it consumes the nonce and nothing else)."""
        account = self.account(signer)
        fees = await self.fees(network, fresh=True)
        tx: dict[str, Any] = {
            "chainId": evm_chain_id(network),
            "nonce": nonce,
            "to": account.address,
            "value": 0,
            "gas": SELF_TRANSFER_GAS,
        }
        max_fee, tip, legacy = fees.max_fee, fees.priority_fee, fees.legacy_gas_price
        if above is not None:
            old = decode_fees(above)
            max_fee, tip = max(max_fee, _bumped(old[0])), max(tip, _bumped(old[1]))
            legacy = None if legacy is None else max(legacy, _bumped(old[0]))
        _set_fees(tx, legacy, max_fee, tip)
        return await self._signed(network, account, tx, nonce)

    async def prepare_bump(self, network: str, raw: bytes) -> PreparedSettlement:
        """Re-sign a signed transaction with fees >= 125 % of its own and >= the current market fees."""
        fields = decode_tx(raw)
        account = self.account(fields.pop("from"))
        fees = await self.fees(network, fresh=True)
        if "gasPrice" in fields:
            fields["gasPrice"] = max(_bumped(int(fields["gasPrice"])), fees.legacy_gas_price or fees.max_fee)
        else:
            fields["maxFeePerGas"] = max(_bumped(int(fields["maxFeePerGas"])), fees.max_fee)
            fields["maxPriorityFeePerGas"] = max(_bumped(int(fields["maxPriorityFeePerGas"])), fees.priority_fee)
        return await self._signed(network, account, fields, int(fields["nonce"]))

    # -- broadcast ---------------------------------------------------------------------------------------------

    async def broadcast(self, network: str, prepared: PreparedSettlement) -> None:
        """eth_sendRawTransaction; "already known" is success, "nonce too low" is success only if it is our tx."""
        pool = self._pool(network)
        # the first look for the receipt rides in the same JSON-RPC batch as the broadcast: an instantly mining node
        # (anvil's automine, fast L2 sequencers) has it at once, so ``confirm`` needs no request of its own
        answers: tuple[Any, Any] = await asyncio.gather(
            pool.call("eth_sendRawTransaction", ["0x" + prepared.raw.hex()]),
            pool.call("eth_getTransactionReceipt", [prepared.tx_id]),
            return_exceptions=True,
        )
        sent, look = answers
        if isinstance(look, Mapping):
            if len(self._early) >= EARLY_RECEIPTS:
                self._early.pop(next(iter(self._early)))
            self._early[prepared.tx_id.lower()] = look
        try:
            if isinstance(sent, BaseException):
                raise sent
            answer = sent
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
            if is_out_of_funds(msg):
                raise SignerOutOfGas(
                    f"the facilitator signer cannot pay gas: {exc.message}", network=network, signer=prepared.signer
                ) from None
            if any(k in msg for k in _UNDERPRICED):
                raise Underpriced(f"eth_sendRawTransaction refused the fees: {exc.message}", network=network) from None
            raise ChainRejected(f"eth_sendRawTransaction failed: {exc.message}", network=network) from None
        if isinstance(answer, str) and answer.lower() != prepared.tx_id.lower():
            log.error("node reported tx hash %s for prepared %s", answer, prepared.tx_id)

    # -- confirm -----------------------------------------------------------------------------------------------

    async def confirm(self, ctx: PaymentContext | None, network: str, tx_id: str, timeout: float) -> Confirmation:
        """The receipt's verdict once mined (first look at once), "pending" after ``timeout``; "unknown" when the
        node has never seen the transaction. Waits share the network's one receipt watcher."""
        pool = self._pool(network)
        receipt = self._early.pop(tx_id.lower(), None)
        if receipt is None:
            receipt = await pool.call("eth_getTransactionReceipt", [tx_id])
        if receipt is not None:
            return self._judge(ctx, receipt)
        # A settlement just broadcast is known to the node; an unknown hash needs a re-broadcast, so say so at once
        # instead of waiting out the timeout.
        if await pool.call("eth_getTransactionByHash", [tx_id]) is None:
            return Confirmation("unknown", message="the node does not know this transaction")
        if timeout > 0:
            receipt = await self._watcher(network, pool).wait(tx_id, timeout)
            if receipt is not None:
                return self._judge(ctx, receipt)
        return Confirmation("pending", reason=reasons.SETTLEMENT_PENDING)

    def _watcher(self, network: str, pool: RpcPool) -> ReceiptWatcher:
        watcher = self._watchers.get(network)
        if watcher is None:
            watcher = self._watchers[network] = ReceiptWatcher(pool)
        return watcher

    async def close(self) -> None:
        """Stop the receipt watchers."""
        for watcher in self._watchers.values():
            await watcher.close()

    def _judge(self, ctx: PaymentContext | None, receipt: Mapping[str, Any]) -> Confirmation:
        block = _int(receipt["blockNumber"]) if receipt.get("blockNumber") is not None else None
        if _int(receipt.get("status", 0)) != 1:
            upto = ctx is not None and ctx.requirements.scheme == "upto"
            return Confirmation(
                "failed",
                reason=reasons.INVALID_UPTO_EVM_TRANSACTION_FAILED
                if upto
                else reasons.INVALID_EXACT_EVM_TRANSACTION_FAILED,
                message="transaction reverted",
                block=block,
            )
        if ctx is None:
            return Confirmation("confirmed", block=block)
        moved = _expected_transfer(ctx)
        if moved is not None and _has_transfer(receipt, ctx.requirements.asset, *moved):
            return Confirmation("confirmed", amount=moved[2], block=block)
        return Confirmation(
            "failed",
            reason=reasons.INVALID_EXACT_EVM_TRANSFER_EVENT_MISMATCH,
            message="no matching Transfer event in the receipt",
            block=block,
        )

    # -- verify by transaction id ------------------------------------------------------------------------------

    async def verify_transaction(self, check: TxCheck) -> TxVerification:
        """A plain ERC-20 payment by tx id: mined, succeeded, enough ``asset`` to ``pay_to``, enough confirmations."""
        if _TX_HASH.fullmatch(check.tx_id) is None:
            # a Solana signature (or any other id) is no transaction on an EVM chain, like Solana's adapter answers
            return TxVerification("invalid", reason=TRANSACTION_NOT_FOUND)
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


def _set_fees(tx: dict[str, Any], legacy: int | None, max_fee: int, tip: int) -> None:
    if legacy is not None:
        tx["gasPrice"] = legacy
    else:
        tx.update(type=2, maxFeePerGas=max_fee, maxPriorityFeePerGas=tip)


def decode_tx(raw: bytes) -> dict[str, Any]:
    """The unsigned fields (and ``from``) of a signed type-2 or legacy transaction."""
    from eth_account import Account
    from eth_account._utils.legacy_transactions import Transaction
    from eth_account.typed_transactions.typed_transaction import TypedTransaction
    from eth_utils.address import to_checksum_address
    from hexbytes import HexBytes

    sender = Account.recover_transaction(raw)
    if raw[:1] == b"\x02":
        d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        out = {k: d[k] for k in ("chainId", "nonce", "value", "gas", "maxFeePerGas", "maxPriorityFeePerGas")}
        out.update(type=2, to=to_checksum_address(bytes(d["to"])), data="0x" + bytes(d["data"]).hex())
        if d.get("accessList"):
            out["accessList"] = d["accessList"]
    else:
        d = Transaction.from_bytes(raw).as_dict()
        v = int(d["v"])
        out = {k: d[k] for k in ("nonce", "value", "gas", "gasPrice")}
        out.update(to=to_checksum_address(bytes(d["to"])), data="0x" + bytes(d["data"]).hex())
        if v >= 35:
            out["chainId"] = (v - 35) // 2
    out["from"] = sender
    return out


def decode_fees(raw: bytes) -> tuple[int, int]:
    """(fee cap, tip) of a signed transaction; both the gas price for a legacy one."""
    d = decode_tx(raw)
    if "gasPrice" in d:
        return int(d["gasPrice"]), int(d["gasPrice"])
    return int(d["maxFeePerGas"]), int(d["maxPriorityFeePerGas"])


def _expected_transfer(ctx: PaymentContext) -> tuple[bytes, bytes, int] | None:
    """(from, to, amount) of the token Transfer the payment's settlement must log; None for a broken payload."""
    if is_permit2_payload(ctx.payload):
        try:
            p = p2.parse_permit2(ctx.payload)
        except ValueError:
            return None
        return p.from20, p.to20, int(ctx.requirements.amount) if p.upto else p.amount
    auth = parse_authorization(ctx.payload)
    return (auth.from20, auth.to20, auth.value) if isinstance(auth, Authorization) else None


def _has_transfer(receipt: Mapping[str, Any], asset: str, from20: bytes, to20: bytes, value: int) -> bool:
    """True when the receipt holds the token's Transfer(from, to, value)."""
    want_from = "0x" + from20.hex()
    want_to = "0x" + to20.hex()
    for entry in receipt.get("logs") or ():
        topics: list[str] = entry.get("topics") or []
        if (
            len(topics) == 3
            and topics[0] == TRANSFER_TOPIC
            and str(entry.get("address", "")).lower() == asset.lower()
            and topic_address(topics[1]) == want_from
            and topic_address(topics[2]) == want_to
            and _int(entry.get("data") or "0x0") == value
        ):
            return True
    return False
