"""Client side of Sign-In-With-X: sign the CAIP-122 message a 402 declares with a key that paid before.

A signer that can sign in implements ``SignInSigner`` (``EvmSigner``: EIP-191 ``personal_sign``; ``SvmSigner``:
ed25519, base58). The first ``supportedChains`` entry one of the signers covers is used, as the reference SDK does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from x402.wire import siwx
from x402.wire.networks import matches


@runtime_checkable
class SignInSigner(Protocol):
    """A payment signer that can also sign a sign-in message."""

    networks: Sequence[str]

    @property
    def address(self) -> str:
        """The signing address."""
        ...

    def sign_in_message(self, message: str) -> str:
        """The message's signature as the chain family writes it (EVM 0x-hex, Solana base58)."""
        ...


def sign_in_header(extensions: Mapping[str, Any] | None, signers: Sequence[object]) -> tuple[str, str] | None:
    """``(value of SIGN-IN-WITH-X, address)`` answering the 402's declaration, or None (not offered, no key)."""
    ext = (extensions or {}).get(siwx.KEY)
    if not isinstance(ext, dict) or not isinstance(ext.get("info"), dict):
        return None
    info, chains = ext["info"], ext.get("supportedChains")
    for chain in chains if isinstance(chains, list) else []:
        chain_id = chain.get("chainId") if isinstance(chain, dict) else None
        if not isinstance(chain_id, str):
            continue
        for signer in signers:
            if isinstance(signer, SignInSigner) and any(matches(p, chain_id) for p in signer.networks):
                return _signed(info, chain_id, str(chain.get("type") or siwx.signature_type(chain_id)), signer)
    return None


def _signed(info: Mapping[str, Any], chain_id: str, sig_type: str, signer: SignInSigner) -> tuple[str, str] | None:
    fields = {k: info[k] for k in siwx.SCHEMA["properties"] if k in info and k not in ("address", "signature")}
    try:
        payload = msgspec.convert(
            {**fields, "address": signer.address, "chainId": chain_id, "type": sig_type, "signature": ""},
            siwx.SiwxPayload,
        )
        text = siwx.message(payload)
    except (msgspec.ValidationError, siwx.SiwxRefused):
        return None
    payload.signature = signer.sign_in_message(text)
    return siwx.encode_header(payload), signer.address
