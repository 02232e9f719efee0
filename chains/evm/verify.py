"""EVM ``exact`` (EIP-3009) verification: hand-encoded calls, the architecture.md §4.4 checks, simulation and diagnosis.

Calldata is built by hand (precomputed selectors, fixed ABI layouts) rather than through web3 contract objects,
and EOA signatures are recovered locally with coincurve, so a warm verify costs one RPC: the eth_call simulation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

from chains.base import PaymentContext, VerifyOutcome
from chains.config import NetworkConfig
from chains.evm.eip712 import (
    address_bytes,
    domain_separator,
    recover_address_bytes,
    to_checksum_address,
    transfer_digest,
)
from chains.evm.presets import known_asset
from chains.evm.rpc import RpcError, RpcPool
from x402.errors import ChainRejected, X402Error
from x402.wire import reasons
from x402.wire.models import is_canonical_uint
from x402.wire.networks import evm_chain_id

T = TypeVar("T")

# ------------------------------------------------------------------------------------------------ calldata


def _selector(signature: str) -> bytes:
    return keccak(signature.encode("ascii"))[:4]


TWA_VRS: Final = _selector(
    "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
)
TWA_BYTES: Final = _selector("transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)")
AUTHORIZATION_STATE: Final = _selector("authorizationState(address,bytes32)")
NAME: Final = _selector("name()")
VERSION: Final = _selector("version()")
BALANCE_OF: Final = _selector("balanceOf(address)")
IS_VALID_SIGNATURE: Final = _selector("isValidSignature(bytes32,bytes)")
ERC1271_MAGIC: Final = bytes.fromhex("1626ba7e")
TRANSFER_TOPIC: Final = "0x" + keccak(b"Transfer(address,address,uint256)").hex()
ERC6492_MAGIC: Final = bytes.fromhex("6492" * 16)

assert TWA_VRS.hex() == "e3ee160e"  # architecture.md §4.5
assert TWA_BYTES.hex() == "cf092995"


def word(value: int) -> bytes:
    """A uint256 ABI word."""
    return value.to_bytes(32, "big")


def addr_word(addr20: bytes) -> bytes:
    """An address ABI word."""
    return bytes(12) + addr20


def bytes_tail(data: bytes) -> bytes:
    """The ABI tail of a dynamic ``bytes`` value: length word plus data padded to 32 bytes."""
    return word(len(data)) + data + bytes(-len(data) % 32)


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed EIP-3009 ``TransferWithAuthorization`` plus its signature."""

    from_: str
    from20: bytes
    to: str
    to20: bytes
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes

    def digest(self, domain_sep: bytes) -> bytes:
        """The EIP-712 digest the payer signed."""
        return transfer_digest(
            domain_sep, self.from20, self.to20, self.value, self.valid_after, self.valid_before, self.nonce
        )

    def recovers_to_payer(self, digest: bytes) -> bool:
        """True when the signature is a 65-byte ECDSA signature by ``from`` (low-s, as OpenZeppelin ECDSA wants)."""
        if len(self.signature) != 65:
            return False
        return recover_address_bytes(digest, self.signature, allow_high_s=False) == self.from20

    def transfer_calldata(self, *, split: bool) -> bytes:
        """``transferWithAuthorization`` calldata: the (v,r,s) overload when ``split``, else the bytes overload."""
        head = (
            addr_word(self.from20)
            + addr_word(self.to20)
            + word(self.value)
            + word(self.valid_after)
            + word(self.valid_before)
            + self.nonce
        )
        sig = self.signature
        if split:
            v = sig[64] + 27 if sig[64] < 27 else sig[64]
            return TWA_VRS + head + word(v) + sig[:32] + sig[32:64]
        wrapped = unwrap_erc6492(sig)
        if wrapped is not None:  # ERC-6492: once the wallet exists, its own (inner) signature is what it checks
            sig = wrapped[2]
        return TWA_BYTES + head + word(7 * 32) + bytes_tail(sig)


def hexdata(data: bytes) -> str:
    """0x-hex of calldata."""
    return "0x" + data.hex()


def call_params(to: str, data: bytes, sender: str | None = None) -> dict[str, Any]:
    """An ``eth_call``/``eth_estimateGas`` transaction object."""
    tx: dict[str, Any] = {"to": to, "data": hexdata(data)}
    if sender is not None:
        tx["from"] = sender
    return tx


def authorization_state_data(from20: bytes, nonce: bytes) -> bytes:
    """``authorizationState(from, nonce)`` calldata."""
    return AUTHORIZATION_STATE + addr_word(from20) + nonce


def balance_of_data(addr20: bytes) -> bytes:
    """``balanceOf(addr)`` calldata."""
    return BALANCE_OF + addr_word(addr20)


def is_valid_signature_data(digest: bytes, signature: bytes) -> bytes:
    """EIP-1271 ``isValidSignature(digest, signature)`` calldata."""
    return IS_VALID_SIGNATURE + digest + word(64) + bytes_tail(signature)


def from_hex(data: Any) -> bytes:
    """Bytes of a 0x-hex RPC result; ValueError when it is not one."""
    if not isinstance(data, str) or not data.startswith("0x"):
        raise ValueError("not 0x-hex")
    return bytes.fromhex(data[2:])


def decode_uint(data: Any) -> int:
    """A uint256 return value."""
    raw = from_hex(data)
    if len(raw) < 32:
        raise ValueError("short uint256 return")
    return int.from_bytes(raw[:32], "big")


def decode_bool(data: Any) -> bool:
    """A bool return value."""
    return decode_uint(data) != 0


def decode_string(data: Any) -> str:
    """A string return value (ABI dynamic string); ValueError on anything else."""
    raw = from_hex(data)
    if len(raw) < 64:
        raise ValueError("short string return")
    offset = int.from_bytes(raw[:32], "big")
    if offset + 32 > len(raw):
        raise ValueError("bad string offset")
    length = int.from_bytes(raw[offset : offset + 32], "big")
    if offset + 32 + length > len(raw):
        raise ValueError("bad string length")
    return raw[offset + 32 : offset + 32 + length].decode("utf-8")


def unwrap_erc6492(signature: bytes) -> tuple[str, bytes, bytes] | None:
    """``(factory, factoryCalldata, innerSignature)`` of an ERC-6492 wrapped signature, or None if not wrapped."""
    if len(signature) < 32 + 96 or not signature.endswith(ERC6492_MAGIC):
        return None
    body = signature[:-32]
    try:
        factory = to_checksum_address(body[12:32])
        off1 = int.from_bytes(body[32:64], "big")
        off2 = int.from_bytes(body[64:96], "big")
        parts = []
        for off in (off1, off2):
            n = int.from_bytes(body[off : off + 32], "big")
            if off + 32 + n > len(body):
                return None
            parts.append(body[off + 32 : off + 32 + n])
    except (ValueError, IndexError):
        return None
    return factory, parts[0], parts[1]


def topic_address(topic: str) -> str:
    """The lower-case 0x address held in a 32-byte log topic."""
    return "0x" + topic[-40:].lower()


def addr20_of(address: str) -> bytes:
    """20 bytes of a 0x address (ValueError when malformed)."""
    return address_bytes(address)


# ------------------------------------------------------------------------------------------------ verification

#: How long a token's on-chain name()/version() answers are reused for mismatch diagnosis.
TOKEN_META_TTL: Final = 300.0
#: validBefore must leave at least this many seconds for settlement (architecture.md §4.4 step 6).
VALID_BEFORE_MARGIN: Final = 6
_UINT256_MAX: Final = 2**256 - 1
_HEXCHARS: Final = frozenset("0123456789abcdefABCDEF")


def _uint(raw: Any, field: str) -> int:
    # One encoding per authorization (x402: integers are decimal strings): no JSON numbers, no leading zeros.
    if not is_canonical_uint(raw):
        raise ValueError(f"authorization.{field} must be a decimal string without leading zeros")
    value = int(raw)
    if not 0 <= value <= _UINT256_MAX:
        raise ValueError(f"authorization.{field} is out of uint256 range")
    return value


def _hex_bytes(raw: Any, field: str, size: int | None = None) -> bytes:
    if not isinstance(raw, str) or raw[:2] not in ("0x", "0X") or len(raw) % 2 or not _HEXCHARS.issuperset(raw[2:]):
        raise ValueError(f"{field} must be 0x-prefixed hex")
    data = bytes.fromhex(raw[2:])
    if size is not None and len(data) != size:
        raise ValueError(f"{field} must be {size} bytes")
    return data


def parse_authorization(payload: Mapping[str, Any]) -> Authorization | VerifyOutcome:
    """The payload's authorization and signature, or an invalid outcome (``invalid_payload`` / ``..._parse_signature``).

    Ill-formed ``authorization`` fields give ``invalid_payload``; a signature that is not non-empty 0x-hex gives
    ``invalid_exact_evm_failed_to_parse_signature`` (both TS codes).
    """
    auth = payload.get("authorization") if isinstance(payload, Mapping) else None
    if not isinstance(auth, Mapping):
        return VerifyOutcome.invalid(reasons.INVALID_PAYLOAD, "payload.authorization is missing")
    raw_from = auth.get("from")
    payer = raw_from if isinstance(raw_from, str) else None
    try:
        if not isinstance(raw_from, str):
            raise ValueError("authorization.from is missing")
        from20 = address_bytes(raw_from)
        to = auth.get("to")
        if not isinstance(to, str):
            raise ValueError("authorization.to is missing")
        to20 = address_bytes(to)
        value = _uint(auth.get("value"), "value")
        valid_after = _uint(auth.get("validAfter"), "validAfter")
        valid_before = _uint(auth.get("validBefore"), "validBefore")
        nonce = _hex_bytes(auth.get("nonce"), "authorization.nonce", 32)
    except ValueError as exc:
        return VerifyOutcome.invalid(reasons.INVALID_PAYLOAD, str(exc), payer=payer)
    assert payer is not None
    try:
        signature = _hex_bytes(payload.get("signature"), "signature")
        if not signature:
            raise ValueError("signature is empty")
    except ValueError as exc:
        return VerifyOutcome.invalid(reasons.INVALID_EXACT_EVM_FAILED_TO_PARSE_SIGNATURE, str(exc), payer=payer)
    return Authorization(payer, from20, to, to20, value, valid_after, valid_before, nonce, signature)


class EvmVerifier:
    """The architecture.md §4.4 checks of ``exact`` EIP-3009 payments, with the caches that keep verify at one RPC."""

    def __init__(
        self,
        nets: Mapping[str, NetworkConfig],
        pools: Mapping[str, RpcPool],
        simulation_sender: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nets = nets
        self.pools = pools
        self.sender = simulation_sender
        self.clock = clock
        self._asset_code: set[tuple[str, str]] = set()  # only positives: a deployed contract stays deployed
        self._token_meta: dict[tuple[str, str], tuple[float, str | None, str | None]] = {}

    # -- helpers ------------------------------------------------------------------------------------------------

    async def eth_call(self, network: str, to: str, data: bytes, *, sender: str | None = None) -> str | RpcError:
        """``eth_call`` at latest; a revert comes back as the RpcError, other errors raise ChainRejected."""
        try:
            result = await self.pools[network].call("eth_call", [call_params(to, data, sender), "latest"])
        except RpcError as exc:
            if exc.is_revert:
                return exc
            raise ChainRejected(f"eth_call failed: {exc.message}", network=network) from None
        if not isinstance(result, str):
            raise ChainRejected("eth_call returned a non-hex result", network=network)
        return result

    async def erc6492_valid(self, network: str, auth: Authorization, digest: bytes) -> bool:
        """Deployless check: ``eth_call`` the validator's creation code, which deploys the wallet through its factory
        inside the call only and asks its ``isValidSignature``; answers 0x01 when valid."""
        data = erc6492_validator_code() + abi_encode(
            ["address", "bytes32", "bytes"], [auth.from_, digest, auth.signature]
        )
        try:
            answer = await self.pools[network].call("eth_call", [{"data": hexdata(data)}, "latest"])
        except RpcError:
            return False
        return isinstance(answer, str) and answer.lower() == "0x01"

    async def counterfactual_checks(self, network: str, asset: str, auth: Authorization) -> VerifyOutcome | None:
        """Step 10 for a wallet that does not exist yet: the transfer cannot be simulated before its deployment,
        so check what would make it fail: a used nonce and the balance."""
        state, balance_r = await asyncio.gather(
            self.eth_call(network, asset, authorization_state_data(auth.from20, auth.nonce)),
            self.eth_call(network, asset, balance_of_data(auth.from20)),
        )
        used = _try(decode_bool, state)
        if used is None:
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_EIP3009_NOT_SUPPORTED, "authorizationState() is not available", auth.from_
            )
        if used:
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_NONCE_ALREADY_USED, "the authorization nonce was already used", auth.from_
            )
        balance = _try(decode_uint, balance_r)
        if balance is None or balance < auth.value:
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_INSUFFICIENT_BALANCE, f"balance {balance} < value {auth.value}", auth.from_
            )
        return None

    async def has_code(self, network: str, address: str) -> bool:
        """True when ``address`` holds contract code (or a 7702 delegation)."""
        try:
            code = await self.pools[network].call("eth_getCode", [address, "latest"])
        except RpcError as exc:
            raise ChainRejected(f"eth_getCode failed: {exc.message}", network=network) from None
        return isinstance(code, str) and code not in ("0x", "0x0", "")

    async def asset_deployed(self, network: str, asset: str) -> bool:
        """``has_code`` for the asset, cached forever once positive."""
        key = (network, asset.lower())
        if key in self._asset_code:
            return True
        if await self.has_code(network, asset):
            self._asset_code.add(key)
            return True
        return False

    async def token_meta(self, network: str, asset: str) -> tuple[str | None, str | None]:
        """The token's on-chain ``name()`` and ``version()`` (None when a call fails), cached for a few minutes."""
        key = (network, asset.lower())
        hit = self._token_meta.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        name_r, version_r = await asyncio.gather(
            self.eth_call(network, asset, NAME), self.eth_call(network, asset, VERSION)
        )
        name = _try(decode_string, name_r)
        version = _try(decode_string, version_r)
        self._token_meta[key] = (now + TOKEN_META_TTL, name, version)
        return name, version

    async def domain_mismatch(self, network: str, asset: str, extra: Mapping[str, Any]) -> VerifyOutcome | None:
        """A name/version mismatch outcome when extra disagrees with the token's on-chain values, else None."""
        name, version = await self.token_meta(network, asset)
        if name is not None and name != extra.get("name"):
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_TOKEN_NAME_MISMATCH,
                f"token name is {name!r}, not {extra['name']!r}",
            )
        if version is not None and version != extra.get("version"):
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_TOKEN_VERSION_MISMATCH,
                f"token version is {version!r}, not {extra['version']!r}",
            )
        return None

    # -- the checks ---------------------------------------------------------------------------------------------

    def static_checks(self, ctx: PaymentContext) -> tuple[Authorization, NetworkConfig, int] | VerifyOutcome:
        """Steps 1-3 of architecture.md §4.4 plus payload parsing: scheme, EIP-712 domain, network, asset, shape."""
        req = ctx.requirements
        acc = ctx.accepted
        if req.scheme != "exact" or ctx.scheme != "exact" or (acc is not None and acc.scheme != "exact"):
            return VerifyOutcome.invalid(reasons.INVALID_EXACT_EVM_SCHEME, f"scheme {ctx.scheme!r} is not exact")
        extra = req.extra
        if extra.get("assetTransferMethod", "eip3009") != "eip3009" or "permit2Authorization" in ctx.payload:
            return VerifyOutcome.invalid(reasons.UNSUPPORTED_PAYLOAD_TYPE, "only EIP-3009 authorizations are supported")
        if not isinstance(extra.get("name"), str) or not isinstance(extra.get("version"), str):
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_MISSING_EIP712_DOMAIN, "requirements.extra needs name and version"
            )
        if ctx.network != req.network or (acc is not None and acc.network != req.network):
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_NETWORK_MISMATCH,
                f"payment is for {ctx.network if acc is None else acc.network}, requirements for {req.network}",
            )
        net = self.nets.get(req.network)
        if net is None:
            return VerifyOutcome.invalid(reasons.INVALID_NETWORK, f"network {req.network} is not configured")
        if known_asset(net, req.asset) is None:
            return VerifyOutcome.invalid(
                reasons.INVALID_PAYMENT_REQUIREMENTS, f"asset {req.asset} is not accepted on {req.network}"
            )
        try:
            amount = _uint(req.amount, "amount")
        except ValueError:
            return VerifyOutcome.invalid(reasons.INVALID_PAYMENT_REQUIREMENTS, "requirements.amount is not atomic")
        auth = parse_authorization(ctx.payload)
        if isinstance(auth, VerifyOutcome):
            return auth
        return auth, net, amount

    async def check_signature(
        self, ctx: PaymentContext, auth: Authorization, net: NetworkConfig, digest: bytes
    ) -> VerifyOutcome | None:
        """Step 4 for a signature that is not the payer's ECDSA one: EIP-1271 / ERC-6492 by the payer's code.

        Callers try local ECDSA recovery first (no RPC); None means valid.
        """
        network = net.network
        payer = auth.from_
        wrapped = unwrap_erc6492(auth.signature)
        if await self.has_code(network, payer):
            inner = wrapped[2] if wrapped is not None else auth.signature
            answer = await self.eth_call(network, payer, is_valid_signature_data(digest, inner))
            if isinstance(answer, str) and answer[2:10] == ERC1271_MAGIC.hex():
                return None
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_SIGNATURE, "EIP-1271 isValidSignature rejected the signature", payer
            )
        if wrapped is not None:
            factory = wrapped[0].lower()
            if factory not in {f.lower() for f in net.eip6492_factories}:
                return VerifyOutcome.invalid(
                    reasons.EIP6492_FACTORY_NOT_ALLOWED, f"ERC-6492 factory {wrapped[0]} is not allowed", payer
                )
            if await self.erc6492_valid(network, auth, digest):
                return None
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_SIGNATURE, "the counterfactual wallet rejects the ERC-6492 signature", payer
            )
        # An EOA whose signature does not recover: most often the client signed another EIP-712 domain, so say
        # which half of extra disagrees with the token rather than a bare signature error.
        mismatch = await self.domain_mismatch(network, ctx.requirements.asset, ctx.requirements.extra)
        if mismatch is not None:
            return VerifyOutcome.invalid(mismatch.reason or "", mismatch.message, payer)
        return VerifyOutcome.invalid(reasons.INVALID_EXACT_EVM_SIGNATURE, "signature does not recover to from", payer)

    def window_checks(self, ctx: PaymentContext, auth: Authorization, amount: int) -> VerifyOutcome | None:
        """Steps 5-8: recipient, validBefore, validAfter, exact value (no RPC)."""
        payer = auth.from_
        if auth.to.lower() != ctx.requirements.pay_to.lower():
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_RECIPIENT_MISMATCH, "authorization.to is not payTo", payer
            )
        now = int(self.clock())
        if auth.valid_before < now + VALID_BEFORE_MARGIN:
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_BEFORE, "authorization expires too soon", payer
            )
        if auth.valid_after > now:
            return VerifyOutcome.invalid(
                reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_AFTER, "authorization is not valid yet", payer
            )
        if auth.value != amount:
            reason = (
                reasons.INVALID_EXACT_EVM_AUTHORIZATION_VALUE
                if ctx.x402_version == 1
                else reasons.INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALUE_MISMATCH
            )
            return VerifyOutcome.invalid(reason, f"authorization.value {auth.value} != amount {amount}", payer)
        return None

    async def verify(self, ctx: PaymentContext, *, simulate: bool = True) -> VerifyOutcome:
        """All of architecture.md §4.4 in the TS order; one RPC (the simulation) for an EOA payer with warm caches."""
        parsed = self.static_checks(ctx)
        if isinstance(parsed, VerifyOutcome):
            return parsed
        auth, net, amount = parsed
        req = ctx.requirements
        try:
            dsep = domain_separator(req.extra["name"], req.extra["version"], evm_chain_id(net.network), req.asset)
        except (ValueError, X402Error) as exc:
            return VerifyOutcome.invalid(reasons.INVALID_PAYMENT_REQUIREMENTS, str(exc), auth.from_)
        digest = auth.digest(dsep)
        eoa = auth.recovers_to_payer(digest)
        if not eoa:
            bad = await self.check_signature(ctx, auth, net, digest)
            if bad is not None:
                return bad
        bad = self.window_checks(ctx, auth, amount)
        if bad is not None:
            return bad
        if not await self.asset_deployed(net.network, req.asset):
            return VerifyOutcome.invalid(reasons.ASSET_NOT_DEPLOYED_CONTRACT, f"no contract at {req.asset}", auth.from_)
        counterfactual = not eoa and unwrap_erc6492(auth.signature) is not None
        if simulate and counterfactual and not await self.has_code(net.network, auth.from_):
            # the wallet is deployed at settlement, so the transfer cannot be simulated yet
            bad = await self.counterfactual_checks(net.network, req.asset, auth)
            return bad if bad is not None else VerifyOutcome(True, payer=auth.from_)
        if simulate:
            # An EOA signature goes through the (v,r,s) overload every EIP-3009 token has; contract wallets need the
            # bytes overload (USDC v2.2), which checks EIP-1271.
            answer = await self.eth_call(net.network, req.asset, auth.transfer_calldata(split=eoa), sender=self.sender)
            if isinstance(answer, RpcError):
                reason, message = await self.diagnose(net.network, req.asset, auth, req.extra, answer)
                return VerifyOutcome.invalid(reason, message, auth.from_)
        return VerifyOutcome(True, payer=auth.from_)

    async def diagnose(
        self, network: str, asset: str, auth: Authorization, extra: Mapping[str, Any], revert: RpcError
    ) -> tuple[str, str]:
        """Why a transferWithAuthorization simulation reverted (architecture.md §4.4 step 10 order)."""
        state, name_r, version_r, balance_r = await asyncio.gather(
            self.eth_call(network, asset, authorization_state_data(auth.from20, auth.nonce)),
            self.eth_call(network, asset, NAME),
            self.eth_call(network, asset, VERSION),
            self.eth_call(network, asset, balance_of_data(auth.from20)),
        )
        used = _try(decode_bool, state)
        if used is None:
            return reasons.INVALID_EXACT_EVM_EIP3009_NOT_SUPPORTED, "authorizationState() is not available"
        if used:
            return reasons.INVALID_EXACT_EVM_NONCE_ALREADY_USED, "the authorization nonce was already used"
        name = _try(decode_string, name_r)
        if name is not None and name != extra.get("name"):
            return reasons.INVALID_EXACT_EVM_TOKEN_NAME_MISMATCH, f"token name is {name!r}"
        version = _try(decode_string, version_r)
        if version is not None and version != extra.get("version"):
            return reasons.INVALID_EXACT_EVM_TOKEN_VERSION_MISMATCH, f"token version is {version!r}"
        balance = _try(decode_uint, balance_r)
        if balance is not None and balance < auth.value:
            return reasons.INVALID_EXACT_EVM_INSUFFICIENT_BALANCE, f"balance {balance} < value {auth.value}"
        return reasons.INVALID_EXACT_EVM_TRANSACTION_SIMULATION_FAILED, revert.message[:200]


def _try(decode: Callable[[Any], T], answer: str | RpcError) -> T | None:
    if isinstance(answer, RpcError):
        return None
    try:
        return decode(answer)
    except (ValueError, UnicodeDecodeError):
        return None


def _load_validator() -> bytes:
    from importlib import resources

    doc = json.loads(resources.files("chains.evm").joinpath("artifacts", "Erc6492Validator.json").read_text())
    return bytes.fromhex(str(doc["bytecode"]).removeprefix("0x"))


#: Read once at import (before any event loop runs): creation code of the deployless ERC-6492/EIP-1271 validator
#: compiled from tests/chains/contracts/Erc6492Validator.sol.
_VALIDATOR_CODE: Final = _load_validator()


def erc6492_validator_code() -> bytes:
    """Creation code of the deployless signature validator."""
    return _VALIDATOR_CODE
