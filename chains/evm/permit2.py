"""Permit2 payloads of EVM ``exact`` (``assetTransferMethod: "permit2"``) and ``upto``: parsing, EIP-712, calldata.

architecture.md §4.6 and §12.2: the payer signs Permit2's ``PermitWitnessTransferFrom`` with the x402 proxy as
spender and a witness binding the recipient (``upto`` also the facilitator); the facilitator calls the proxy.
A leaf module: keccak, eth-abi and the EIP-712 helpers only, no RPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

from chains.evm.eip712 import address_bytes, recover_address_bytes, to_checksum_address
from x402.wire.models import is_canonical_uint

#: Canonical addresses (the same on every EVM chain: CREATE2). Local chains get our builds placed there.
PERMIT2_ADDRESS: Final = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
EXACT_PROXY_ADDRESS: Final = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
UPTO_PROXY_ADDRESS: Final = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"

#: The payment-payload extension carrying an EIP-2612 permit that approves Permit2 (gas sponsoring).
EIP2612_EXTENSION: Final = "eip2612GasSponsoring"

_TOKEN_PERMISSIONS: Final = b"TokenPermissions(address token,uint256 amount)"
_EXACT_WITNESS: Final = b"Witness(address to,uint256 validAfter)"
_UPTO_WITNESS: Final = b"Witness(address to,address facilitator,uint256 validAfter)"
_STUB: Final = b"PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
TOKEN_PERMISSIONS_TYPEHASH: Final = keccak(_TOKEN_PERMISSIONS)
EXACT_WITNESS_TYPEHASH: Final = keccak(_EXACT_WITNESS)
UPTO_WITNESS_TYPEHASH: Final = keccak(_UPTO_WITNESS)
EXACT_PERMIT_TYPEHASH: Final = keccak(_STUB + b"Witness witness)" + _TOKEN_PERMISSIONS + _EXACT_WITNESS)
UPTO_PERMIT_TYPEHASH: Final = keccak(_STUB + b"Witness witness)" + _TOKEN_PERMISSIONS + _UPTO_WITNESS)
_DOMAIN_TYPEHASH: Final = keccak(b"EIP712Domain(string name,uint256 chainId,address verifyingContract)")

#: EIP-712 ``types`` for clients that sign through eth-account / viem (the official SDKs' shapes).
TYPES_EXACT: Final[dict[str, list[dict[str, str]]]] = {
    "PermitWitnessTransferFrom": [
        {"name": "permitted", "type": "TokenPermissions"},
        {"name": "spender", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
        {"name": "witness", "type": "Witness"},
    ],
    "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
    "Witness": [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}],
}
TYPES_UPTO: Final[dict[str, list[dict[str, str]]]] = {
    **TYPES_EXACT,
    "Witness": [
        {"name": "to", "type": "address"},
        {"name": "facilitator", "type": "address"},
        {"name": "validAfter", "type": "uint256"},
    ],
}

_PERMIT_T: Final = "((address,uint256),uint256,uint256)"
_P2612_T: Final = "(uint256,uint256,bytes32,bytes32,uint8)"
_SETTLE_EXACT: Final = f"settle({_PERMIT_T},address,(address,uint256),bytes)"
_SETTLE_EXACT_2612: Final = f"settleWithPermit({_P2612_T},{_PERMIT_T},address,(address,uint256),bytes)"
_SETTLE_UPTO: Final = f"settle({_PERMIT_T},uint256,address,(address,address,uint256),bytes)"
_SETTLE_UPTO_2612: Final = f"settleWithPermit({_P2612_T},{_PERMIT_T},uint256,address,(address,address,uint256),bytes)"
NONCE_BITMAP: Final = keccak(b"nonceBitmap(address,uint256)")[:4]
ALLOWANCE: Final = keccak(b"allowance(address,address)")[:4]
_UINT256_MAX: Final = 2**256 - 1
_HEXCHARS: Final = frozenset("0123456789abcdefABCDEF")

#: Custom errors of the proxies and of Permit2 (4-byte selectors in revert data) and the reason each one means.
REVERT_REASONS: Final[dict[str, str]] = {
    keccak(sig.encode())[:4].hex(): code
    for sig, code in (
        ("AmountExceedsPermitted()", "upto_amount_exceeds_permitted"),
        ("UnauthorizedFacilitator()", "upto_unauthorized_facilitator"),
        ("InvalidAmount()", "permit2_invalid_amount"),
        ("InvalidDestination()", "permit2_invalid_destination"),
        ("InvalidOwner()", "permit2_invalid_owner"),
        ("PaymentTooEarly()", "permit2_payment_too_early"),
        ("Permit2612AmountMismatch()", "permit2_2612_amount_mismatch"),
        ("InvalidNonce()", "permit2_invalid_nonce"),
        ("InvalidSigner()", "invalid_permit2_signature"),
        ("SignatureExpired(uint256)", "permit2_deadline_expired"),
        ("InvalidAmount(uint256)", "permit2_invalid_amount"),
    )
}


def is_permit2_payload(payload: Mapping[str, Any]) -> bool:
    """Facilitators tell a Permit2 payload by its ``permit2Authorization`` key (architecture.md §4.6)."""
    return isinstance(payload, Mapping) and "permit2Authorization" in payload


def _uint(raw: Any, field: str, *, hex_ok: bool = False) -> int:
    if hex_ok and isinstance(raw, str) and raw[:2] in ("0x", "0X") and 2 < len(raw) <= 66:
        if not _HEXCHARS.issuperset(raw[2:]):
            raise ValueError(f"{field} is not hex")
        return int(raw, 16)
    if not is_canonical_uint(raw):
        raise ValueError(f"{field} must be a decimal string without leading zeros")
    value = int(raw)
    if value > _UINT256_MAX:
        raise ValueError(f"{field} is out of uint256 range")
    return value


def _addr(raw: Any, field: str) -> bytes:
    if not isinstance(raw, str):
        raise ValueError(f"{field} is missing")
    return address_bytes(raw)


@dataclass(frozen=True, slots=True)
class Permit2Authorization:
    """A parsed ``permit2Authorization`` and its signature; ``facilitator`` is set for ``upto`` witnesses."""

    from_: str
    from20: bytes
    token20: bytes
    amount: int
    spender20: bytes
    nonce: int
    deadline: int
    to20: bytes
    valid_after: int
    facilitator20: bytes | None
    signature: bytes

    @property
    def upto(self) -> bool:
        """True for an ``upto`` witness (it names the facilitator)."""
        return self.facilitator20 is not None

    def struct_hash(self) -> bytes:
        """``hashStruct(PermitWitnessTransferFrom)`` of this authorization."""
        permitted = keccak(TOKEN_PERMISSIONS_TYPEHASH + bytes(12) + self.token20 + self.amount.to_bytes(32, "big"))
        if self.facilitator20 is None:
            witness = keccak(EXACT_WITNESS_TYPEHASH + bytes(12) + self.to20 + self.valid_after.to_bytes(32, "big"))
            typehash = EXACT_PERMIT_TYPEHASH
        else:
            witness = keccak(
                UPTO_WITNESS_TYPEHASH
                + bytes(12)
                + self.to20
                + bytes(12)
                + self.facilitator20
                + self.valid_after.to_bytes(32, "big")
            )
            typehash = UPTO_PERMIT_TYPEHASH
        return keccak(
            typehash
            + permitted
            + bytes(12)
            + self.spender20
            + self.nonce.to_bytes(32, "big")
            + self.deadline.to_bytes(32, "big")
            + witness
        )

    def digest(self, chain_id: int) -> bytes:
        """The EIP-712 digest the payer signed (Permit2 domain: name, chainId, verifyingContract; no version)."""
        return keccak(b"\x19\x01" + permit2_domain(chain_id) + self.struct_hash())

    def recovers_to_payer(self, chain_id: int) -> bool:
        """A 65-byte ECDSA signature by ``from`` (low-s only)."""
        if len(self.signature) != 65:
            return False
        return recover_address_bytes(self.digest(chain_id), self.signature, allow_high_s=False) == self.from20

    # -- calldata --------------------------------------------------------------------------------------------

    def _permit(self) -> tuple[Any, ...]:
        return ((to_checksum_address(self.token20), self.amount), self.nonce, self.deadline)

    def _witness(self) -> tuple[Any, ...]:
        if self.facilitator20 is None:
            return (to_checksum_address(self.to20), self.valid_after)
        return (to_checksum_address(self.to20), to_checksum_address(self.facilitator20), self.valid_after)

    def settle_calldata(self, amount: int, permit2612: Eip2612Permit | None = None) -> bytes:
        """The proxy call moving ``amount`` (``exact``: always the permitted amount), with the EIP-2612 permit."""
        owner = to_checksum_address(self.from20)
        head: list[Any] = [self._permit()]
        if self.upto:
            head.append(amount)
        tail = [owner, self._witness(), self.signature]
        if permit2612 is None:
            sig = _SETTLE_UPTO if self.upto else _SETTLE_EXACT
            args = head + tail
        else:
            sig = _SETTLE_UPTO_2612 if self.upto else _SETTLE_EXACT_2612
            args = [permit2612.as_tuple(), *head, *tail]
        types = sig[sig.index("(") + 1 : -1]
        return keccak(sig.encode())[:4] + abi_encode(_split_types(types), args)


def _split_types(types: str) -> list[str]:
    """Top-level comma split of an ABI parameter list."""
    out: list[str] = []
    depth = 0
    cur = ""
    for ch in types:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    out.append(cur)
    return out


def permit2_domain(chain_id: int) -> bytes:
    """The Permit2 EIP-712 domain separator on ``chain_id``."""
    return keccak(
        _DOMAIN_TYPEHASH
        + keccak(b"Permit2")
        + chain_id.to_bytes(32, "big")
        + bytes(12)
        + address_bytes(PERMIT2_ADDRESS)
    )


def parse_permit2(payload: Mapping[str, Any]) -> Permit2Authorization:
    """The payload's Permit2 authorization; ValueError naming the first bad field."""
    auth = payload.get("permit2Authorization")
    if not isinstance(auth, Mapping):
        raise ValueError("payload.permit2Authorization is missing")
    permitted = auth.get("permitted")
    witness = auth.get("witness")
    if not isinstance(permitted, Mapping) or not isinstance(witness, Mapping):
        raise ValueError("permit2Authorization.permitted and .witness must be objects")
    raw_from = auth.get("from")
    from20 = _addr(raw_from, "permit2Authorization.from")
    facilitator = witness.get("facilitator")
    sig = payload.get("signature")
    if not isinstance(sig, str) or sig[:2] not in ("0x", "0X") or len(sig) % 2 or not _HEXCHARS.issuperset(sig[2:]):
        raise ValueError("signature must be 0x-prefixed hex")
    signature = bytes.fromhex(sig[2:])
    if not signature:
        raise ValueError("signature is empty")
    assert isinstance(raw_from, str)
    return Permit2Authorization(
        from_=raw_from,
        from20=from20,
        token20=_addr(permitted.get("token"), "permitted.token"),
        amount=_uint(permitted.get("amount"), "permitted.amount"),
        spender20=_addr(auth.get("spender"), "permit2Authorization.spender"),
        nonce=_uint(auth.get("nonce"), "permit2Authorization.nonce", hex_ok=True),
        deadline=_uint(auth.get("deadline"), "permit2Authorization.deadline"),
        to20=_addr(witness.get("to"), "witness.to"),
        valid_after=_uint(witness.get("validAfter"), "witness.validAfter"),
        facilitator20=None if facilitator is None else _addr(facilitator, "witness.facilitator"),
        signature=signature,
    )


def payer_of(payload: Mapping[str, Any]) -> str | None:
    """``permit2Authorization.from`` as the payer spelled it, when present."""
    auth = payload.get("permit2Authorization") if isinstance(payload, Mapping) else None
    raw = auth.get("from") if isinstance(auth, Mapping) else None
    return raw if isinstance(raw, str) else None


def nonce_key(payload: Mapping[str, Any]) -> str:
    """The Permit2 nonce as a decimal string (payers send decimal or 0x-hex): the replay-key part."""
    auth = payload.get("permit2Authorization")
    raw = auth.get("nonce") if isinstance(auth, Mapping) else None
    try:
        return str(_uint(raw, "nonce", hex_ok=True))
    except ValueError:
        return str(raw)


# ------------------------------------------------------------------------------------------------ EIP-2612


@dataclass(frozen=True, slots=True)
class Eip2612Permit:
    """The ``eip2612GasSponsoring`` extension info: a signed ``permit(owner, Permit2, amount, deadline)``."""

    from20: bytes
    asset20: bytes
    spender20: bytes
    amount: int
    nonce: int
    deadline: int
    signature: bytes

    def as_tuple(self) -> tuple[int, int, bytes, bytes, int]:
        """The proxies' ``EIP2612Permit`` struct: (value, deadline, r, s, v)."""
        sig = self.signature
        v = sig[64] + 27 if sig[64] < 27 else sig[64]
        return (self.amount, self.deadline, sig[:32], sig[32:64], v)


def parse_eip2612(extensions: Mapping[str, Any]) -> Eip2612Permit | None:
    """The EIP-2612 permit of the payment's extensions, None when absent; ValueError when malformed."""
    ext = extensions.get(EIP2612_EXTENSION) if isinstance(extensions, Mapping) else None
    if ext is None:
        return None
    info = ext.get("info") if isinstance(ext, Mapping) else None
    if not isinstance(info, Mapping) or "signature" not in info:
        return None  # the server's declaration without a client permit: nothing to use
    sig = info.get("signature")
    if not isinstance(sig, str) or sig[:2] != "0x" or not _HEXCHARS.issuperset(sig[2:]) or len(sig) != 132:
        raise ValueError("eip2612GasSponsoring.info.signature must be 65 bytes of 0x-hex")
    return Eip2612Permit(
        from20=_addr(info.get("from"), "info.from"),
        asset20=_addr(info.get("asset"), "info.asset"),
        spender20=_addr(info.get("spender"), "info.spender"),
        amount=_uint(info.get("amount"), "info.amount"),
        nonce=_uint(info.get("nonce"), "info.nonce"),
        deadline=_uint(info.get("deadline"), "info.deadline"),
        signature=bytes.fromhex(sig[2:]),
    )


def nonce_bitmap_data(owner20: bytes, nonce: int) -> bytes:
    """``nonceBitmap(owner, nonce >> 8)`` calldata."""
    return NONCE_BITMAP + bytes(12) + owner20 + (nonce >> 8).to_bytes(32, "big")


def nonce_used(bitmap: int, nonce: int) -> bool:
    """True when ``nonce``'s bit is set in its bitmap word."""
    return bool(bitmap >> (nonce & 0xFF) & 1)


def allowance_data(owner20: bytes, spender: str) -> bytes:
    """``allowance(owner, spender)`` calldata."""
    return ALLOWANCE + bytes(12) + owner20 + bytes(12) + address_bytes(spender)


def revert_reason(data: str | None) -> str | None:
    """The reason code of a proxy / Permit2 custom error in revert data, if it is one of theirs."""
    if not data or not data.startswith("0x") or len(data) < 10:
        return None
    return REVERT_REASONS.get(data[2:10].lower())
