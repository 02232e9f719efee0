"""The trust formula (docs/trust.md): pure functions from counted history to a score and its factors.

history   = min(1, ok / 20)                 ok = successful payments
success   = ok / (ok + failed)              0.5 with no attempts
age       = min(1, floor(days since first record) / 30)
volume    = min(1, log10(1 + atomic volume) / 9)   (10^9 atomic units = 1,000 USDC)
diversity = min(1, distinct counterparties / 5)
uptime    = probes ok / probes total        0.5 before the first probe (resources only)

address, wallet: base = .30 success + .20 history + .15 age + .15 volume + .20 diversity
resource:        base = .25 uptime + .20 success + .15 history + .10 age + .10 volume + .20 diversity

score = clamp(round(100 * base) - wash - circular - flags, 0, 100)
  wash     = round(120 * (top payer's share of volume - 0.5)) when that share > 0.5 over >= 3 paid calls
  circular = 25 when money also flowed back from a payee to one of its payers (A -> B -> A)
  flags    = 40 per risk list (deny, mixer, exploit) naming the subject or its payee, at most 100
  refunds/disputes: none exist in our records yet (no penalty term until they do)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

HISTORY_FULL: Final = 20
AGE_FULL_DAYS: Final = 30
VOLUME_DECADES: Final = 9
DIVERSITY_FULL: Final = 5
WASH_MIN_CALLS: Final = 3
WASH_WEIGHT: Final = 120
CIRCULAR_PENALTY: Final = 25
FLAG_PENALTY: Final = 40

PAYER_WEIGHTS: Final = {"success": 0.30, "history": 0.20, "age": 0.15, "volume": 0.15, "diversity": 0.20}
RESOURCE_WEIGHTS: Final = {
    "uptime": 0.25,
    "success": 0.20,
    "history": 0.15,
    "age": 0.10,
    "volume": 0.10,
    "diversity": 0.20,
}


@dataclass(frozen=True, slots=True)
class History:
    """What our records say about one subject."""

    ok: int = 0
    failed: int = 0
    volume: int = 0
    counterparties: int = 0
    age_days: int = 0
    top_share: float = 0.0
    circular: bool = False
    flags: tuple[str, ...] = ()
    probes_ok: int = 0
    probes_total: int = 0


def _signals(h: History) -> dict[str, float]:
    attempts = h.ok + h.failed
    return {
        "history": min(1.0, h.ok / HISTORY_FULL),
        "success": h.ok / attempts if attempts else 0.5,
        "age": min(1.0, h.age_days / AGE_FULL_DAYS),
        "volume": min(1.0, math.log10(1 + h.volume) / VOLUME_DECADES),
        "diversity": min(1.0, h.counterparties / DIVERSITY_FULL),
        "uptime": h.probes_ok / h.probes_total if h.probes_total else 0.5,
    }


def wash_penalty(h: History) -> int:
    """Points off when one payer produced most of the volume (over at least three paid calls)."""
    if h.ok < WASH_MIN_CALLS or h.top_share <= 0.5:
        return 0
    return round(WASH_WEIGHT * (h.top_share - 0.5))


def score(h: History, *, resource: bool) -> tuple[int, dict[str, Any]]:
    """The score and its factors (every signal, the weighted base and each penalty)."""
    weights = RESOURCE_WEIGHTS if resource else PAYER_WEIGHTS
    signals = _signals(h)
    base = round(100 * sum(w * signals[name] for name, w in weights.items()))
    wash = wash_penalty(h) if resource else 0
    circular = CIRCULAR_PENALTY if h.circular else 0
    flags = min(100, FLAG_PENALTY * len(h.flags))
    value = max(0, min(100, base - wash - circular - flags))
    factors: dict[str, Any] = {
        **{name: round(signals[name], 4) for name in weights},
        "base": base,
        "payments": h.ok,
        "failures": h.failed,
        "volumeAtomic": str(h.volume),
        "counterparties": h.counterparties,
        "ageDays": h.age_days,
        "topPayerShare": round(h.top_share, 4),
        "washPenalty": wash,
        "circularFlow": h.circular,
        "circularPenalty": circular,
        "riskFlags": list(h.flags),
        "riskPenalty": flags,
        "refundsDisputes": None,
    }
    if not resource:
        factors.pop("topPayerShare")
        factors.pop("washPenalty")
    return value, factors
