"""Which of our offers a payment pays (architecture.md §1.3), and the payment's id for logs and the replay guard."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from x402.paywall.challenge import Challenge
from x402.wire.models import PaymentPayloadV1, PaymentRequirements, encode_json, is_canonical_uint
from x402.wire.networks import is_evm


def _same_address(network: str, ours: str, theirs: str) -> bool:
    # EVM addresses are case-insensitive (EIP-55 is only a checksum); Solana base58 is case-sensitive
    if is_evm(network):
        return ours.lower() == theirs.lower()
    return ours == theirs


def requirements_match(ours: PaymentRequirements, accepted: PaymentRequirements) -> bool:
    """Core fields equal and our ``extra`` a subset of theirs (keys a client adds are tolerated, but on EVM not an
    ``assetTransferMethod`` other than ours, EIP-3009 when unnamed)."""
    if (
        ours.scheme != accepted.scheme
        or ours.network != accepted.network
        or ours.amount != accepted.amount
        or ours.max_timeout_seconds != accepted.max_timeout_seconds
        or not _same_address(ours.network, ours.asset, accepted.asset)
        or not _same_address(ours.network, ours.pay_to, accepted.pay_to)
    ):
        return False
    theirs = accepted.extra
    if is_evm(ours.network) and ours.extra.get("assetTransferMethod", "eip3009") != theirs.get(
        "assetTransferMethod", "eip3009"
    ):
        return False  # an EIP-3009 offer and a Permit2 one of the same asset and price are two offers
    return all(key in theirs and theirs[key] == value for key, value in ours.extra.items())


def match_v2(challenge: Challenge, accepted: PaymentRequirements) -> int | None:
    """Index of the offer a v2 ``accepted`` echoes, or None."""
    for i, ours in enumerate(challenge.requirements):
        if requirements_match(ours, accepted):
            return i
    return None


def match_v1(challenge: Challenge, payload: PaymentPayloadV1) -> int | None:
    """Index of the v1 offer a v1 payload pays, or None.

    A v1 payload names only scheme and network, so when several offers share them the EIP-3009 authorization's
    ``value``/``to`` pick the one (it cannot tell two assets apart: the facilitator's signature check then does).
    """
    auth = payload.payload.get("authorization")
    candidates = [
        i
        for i, req in enumerate(challenge.requirements_v1)
        if req is not None and req.scheme == payload.scheme and req.network == payload.network
    ]
    if len(candidates) > 1 and isinstance(auth, Mapping):
        narrowed = [
            i
            for i in candidates
            if str(auth.get("value")) == challenge.requirements[i].amount
            and _same_address(challenge.requirements[i].network, challenge.requirements[i].pay_to, str(auth.get("to")))
        ]
        candidates = narrowed or candidates
    return candidates[0] if candidates else None


def payment_id(requirements: PaymentRequirements, scheme_payload: Mapping[str, Any]) -> str:
    """A stable id of a payment, equal for every re-encoding of the same authorization.

    EIP-3009: ``network:asset:from:nonce`` (the token refuses a nonce twice per payer). Other schemes: a hash of the
    canonical JSON of the scheme payload, which is what the facilitator journal keys an identical settle on.
    """
    auth = scheme_payload.get("authorization")
    if isinstance(auth, Mapping) and isinstance(auth.get("nonce"), str) and isinstance(auth.get("from"), str):
        return ":".join(
            (requirements.network, requirements.asset.lower(), str(auth["from"]).lower(), str(auth["nonce"]).lower())
        )
    digest = hashlib.sha256(encode_json(_canonical(scheme_payload))).hexdigest()
    return f"{requirements.network}:sha256:{digest}"


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def valid_before(scheme_payload: Mapping[str, Any]) -> int | None:
    """The EIP-3009 ``validBefore`` (Permit2: ``deadline``) of a payload (unix seconds), if it has one."""
    auth = scheme_payload.get("authorization")
    permit2 = scheme_payload.get("permit2Authorization")
    if isinstance(permit2, Mapping):
        raw = permit2.get("deadline")
        return int(raw) if is_canonical_uint(raw) and len(raw) < 20 else None
    if not isinstance(auth, Mapping):
        return None
    raw = auth.get("validBefore")
    if is_canonical_uint(raw) and len(raw) < 20:
        return int(raw)
    return None
