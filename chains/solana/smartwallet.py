"""The opt-in smart-wallet path of Solana ``exact`` (off by default; ``X402_SVM_SMART_WALLET``).

A smart wallet (Squads, Swig, SPL Governance, ...) pays from inside its own program: the ``TransferChecked`` is a
CPI, so the static instruction layout cannot show it. When the static layout fails for a layout reason and the
setting is on, the transaction is accepted only if: every top-level program (compute budget and memo aside) is on
the allowlist; the fee payer is in no instruction; the compute budget stays within the smart-wallet caps; and the
simulation (with inner instructions) shows exactly one transfer that pays the requirement (``verify.py``). After
settlement the confirmed transaction is checked again (``settle.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from solders.message import MessageV1
from solders.pubkey import Pubkey

from chains.solana.payer import COMPUTE_BUDGET_PROGRAM, LIGHTHOUSE_PROGRAM, MEMO_PROGRAM
from x402.wire import reasons as R

#: The programs the reference implementation trusts by default (TS ``@x402/svm`` 2.27).
DEFAULT_PROGRAMS: Final = (
    "SQDS4ep65T869zMMBKyuUq6aD6EgTu8psMjkvj52pCf",  # Squads Multisig v4
    "SMRTzfY6DfH5ik3TKiyLFfXexV8uSG3d2UksSCYdunG",  # Squads Smart Account
    "SWiGmQedKzMz1tiTqoJCWeGDnGXfNBp2PkXLkpCAtQo",  # Swig (legacy)
    "swigypWHEksbC64pWKwah1WTeh9JXwx8H1rJHLdbQMB",  # Swig v2
    "GovER5Lthms3bLBqWub97yVrMmEogzX7xNjdXpPPCVZw",  # SPL Governance
    "CoREENxT6tW1HoK8ypY1SxRMZTcVPm7R94rH4PZNhX7d",  # Metaplex Core
    str(LIGHTHOUSE_PROGRAM),  # wallets' assertion instructions
)
DEFAULT_MAX_COMPUTE_UNITS: Final = 400_000
DEFAULT_MAX_COMPUTE_UNIT_PRICE: Final = 50_000  # micro-lamports per compute unit

#: Static-layout failures after which the smart-wallet path may still accept the payment (never amount, mint,
#: recipient, memo, signature or fee-payer failures).
RECOVERABLE: Final = frozenset(
    {
        R.INVALID_EXACT_SVM_LENGTH,
        R.INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION,
        R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FOURTH_INSTRUCTION,
        R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FIFTH_INSTRUCTION,
        R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SIXTH_INSTRUCTION,
        R.INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_OPTIONAL_INSTRUCTION,
        R.INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION,
        R.INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION,
    }
)


@dataclass(frozen=True, slots=True)
class SmartWalletOptions:
    """The smart-wallet setting: on/off, the program allowlist and the compute caps."""

    enabled: bool = False
    programs: frozenset[Pubkey] = field(
        default_factory=lambda: frozenset(Pubkey.from_string(p) for p in DEFAULT_PROGRAMS)
    )
    max_compute_units: int = DEFAULT_MAX_COMPUTE_UNITS
    max_compute_unit_price: int = DEFAULT_MAX_COMPUTE_UNIT_PRICE

    @classmethod
    def from_settings(
        cls, enabled: bool, programs: Iterable[str] = (), max_compute_units: int = 0, max_price: int = -1
    ) -> SmartWalletOptions:
        """Options from settings values (empty / non-positive: the defaults); ValueError on a bad program id."""
        listed = frozenset(Pubkey.from_string(p.strip()) for p in programs if p.strip())
        return cls(
            enabled,
            listed or cls().programs,
            max_compute_units if max_compute_units > 0 else DEFAULT_MAX_COMPUTE_UNITS,
            max_price if max_price >= 0 else DEFAULT_MAX_COMPUTE_UNIT_PRICE,
        )


class Refused(Exception):
    """A smart-wallet structural check failed: ``reason`` and a message."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


def check_structure(opts: SmartWalletOptions, msg: Any, keys: Sequence[Pubkey], fee_payers: Iterable[Pubkey]) -> None:
    """Allowlist, fee-payer isolation and compute caps of a message (``keys``: static + loaded); raises Refused."""
    ours = set(fee_payers)
    for ix in msg.instructions:
        prog = keys[ix.program_id_index]
        if prog not in (COMPUTE_BUDGET_PROGRAM, MEMO_PROGRAM) and prog not in opts.programs:
            raise Refused(R.SW_PROGRAM_NOT_ALLOWED, f"program {prog} is not on the smart-wallet allowlist")
        if prog in ours or any(keys[a] in ours for a in bytes(ix.accounts)):
            raise Refused(R.SW_FEE_PAYER_NOT_ISOLATED, f"the fee payer appears in an instruction of {prog}")
    if isinstance(msg, MessageV1):
        cfg = msg.config
        _caps(opts, cfg.compute_unit_limit, cfg.priority_fee)
        return
    for ix in msg.instructions:
        if keys[ix.program_id_index] != COMPUTE_BUDGET_PROGRAM:
            continue
        data = bytes(ix.data)
        if not data:
            raise Refused(R.SW_MALFORMED_COMPUTE_BUDGET, "empty compute-budget instruction")
        if data[0] == 2:
            if len(data) < 5:
                raise Refused(R.SW_MALFORMED_COMPUTE_LIMIT)
            _caps(opts, int.from_bytes(data[1:5], "little"), None)
        elif data[0] == 3:
            if len(data) < 9:
                raise Refused(R.SW_MALFORMED_COMPUTE_PRICE)
            _caps(opts, None, int.from_bytes(data[1:9], "little"))
        else:
            raise Refused(R.SW_UNSUPPORTED_COMPUTE_BUDGET, f"compute-budget instruction type {data[0]}")


def _caps(opts: SmartWalletOptions, units: int | None, price: int | None) -> None:
    if units is not None and units > opts.max_compute_units:
        raise Refused(R.SW_COMPUTE_UNITS_TOO_HIGH, f"{units} compute units, at most {opts.max_compute_units}")
    if price is not None and price > opts.max_compute_unit_price:
        raise Refused(
            R.SW_PRIORITY_FEE_TOO_HIGH, f"{price} micro-lamports per unit, at most {opts.max_compute_unit_price}"
        )


__all__ = [
    "DEFAULT_MAX_COMPUTE_UNITS",
    "DEFAULT_MAX_COMPUTE_UNIT_PRICE",
    "DEFAULT_PROGRAMS",
    "RECOVERABLE",
    "Refused",
    "SmartWalletOptions",
    "check_structure",
]
