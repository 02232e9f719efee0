"""The values of the risk stage: the payment under assessment, the flags rules raise, and the decision.

Score scale: ``score`` is a float in [0, 1] where **1.0 means no risk signal at all** and 0.0 means certain
risk. Each flag multiplies the score by ``1 - weight(severity)`` (info 0, low 0.05, medium 0.15, high 0.4,
critical 1.0), so one critical flag gives 0.0 and independent minor signals compound gently.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Severity = Literal["info", "low", "medium", "high", "critical"]
Action = Literal["flag", "require_confirmation", "block"]
Level = Literal["low", "medium", "high", "critical"]
Recommendation = Literal["accept", "require_confirmation", "block"]

SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
ACTIONS: tuple[Action, ...] = ("flag", "require_confirmation", "block")
SEVERITY_WEIGHT: Mapping[str, float] = {"info": 0.0, "low": 0.05, "medium": 0.15, "high": 0.4, "critical": 1.0}

#: Reason code of a payment refused by the risk stage (verify ``invalidReason`` / settle ``errorReason``).
RISK_BLOCKED = "risk_blocked"


@dataclass(frozen=True, slots=True)
class Flag:
    """One risk signal raised by a rule."""

    code: str
    severity: Severity
    message: str
    rule: str
    action: Action = "flag"

    def to_wire(self) -> dict[str, str]:
        """JSON-able camelCase form."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "rule": self.rule,
            "action": self.action,
        }


@dataclass(slots=True)
class RiskContext:
    """One payment as the risk rules see it; rules publish what they measured into ``facts``.

    ``facts`` feeds the tenant's custom expressions (stage two), e.g. ``velocity_1m`` from the velocity rule.
    """

    network: str
    asset: str
    payer: str
    pay_to: str
    amount: int
    resource: str = ""
    tenant_id: str | None = None
    timestamp: float = field(default_factory=time.time)
    payment_id: str | None = None
    scheme: str = "exact"
    payload: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    config: Any = None  # the tenant's effective RiskConfig, attached by the engine before rules run
    facts: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class RiskRule(Protocol):
    """A small, independent check; evaluated concurrently with the others under a timeout."""

    name: str

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """The flags this payment raises (empty when nothing is wrong)."""
        ...


@dataclass(frozen=True, slots=True)
class Intent:
    """What the payment seems to buy, inferred from memo/calldata/URL; ``confidence`` 0..1."""

    resource_path: str | None = None
    tier: str | None = None
    duration: str | None = None
    memo: str | None = None
    sources: tuple[str, ...] = ()
    confidence: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        """JSON-able camelCase form; absent hints are omitted."""
        out: dict[str, Any] = {"confidence": round(self.confidence, 2)}
        if self.resource_path is not None:
            out["resourcePath"] = self.resource_path
        if self.tier is not None:
            out["tier"] = self.tier
        if self.duration is not None:
            out["duration"] = self.duration
        if self.memo is not None:
            out["memo"] = self.memo
        if self.sources:
            out["sources"] = list(self.sources)
        return out


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """The risk stage's decision about one payment."""

    score: float
    level: Level
    recommendation: Recommendation
    flags: tuple[Flag, ...] = ()
    list_versions: Mapping[str, str] = field(default_factory=dict)
    intent: Intent | None = None
    elapsed_ms: float = 0.0
    #: the payer's trust score from our records (``{score, factors, computedAt}``), attached by the service
    trust: Mapping[str, Any] | None = None

    @property
    def blocked(self) -> bool:
        """True when the payment must be refused."""
        return self.recommendation == "block"

    def summary(self) -> str:
        """A one-line human explanation (for ``invalidMessage`` / ``errorMessage``)."""
        decisive = [f for f in self.flags if f.action == "block"] or list(self.flags)
        text = "; ".join(f"{f.code}: {f.message}" for f in decisive[:5])
        return f"risk {self.recommendation}: {text}" if text else f"risk {self.recommendation}"

    def to_wire(self) -> dict[str, Any]:
        """JSON-able camelCase dict, placed under ``extensions["risk"]`` of a VerifyResponse."""
        out: dict[str, Any] = {
            "score": round(self.score, 4),
            "scale": "0..1, 1 = safe",
            "level": self.level,
            "recommendation": self.recommendation,
            "flags": [f.to_wire() for f in self.flags],
            "listVersions": dict(self.list_versions),
        }
        if self.intent is not None:
            out["intent"] = self.intent.to_wire()
        if self.trust is not None:
            out["trust"] = dict(self.trust)
        return out


def score_flags(flags: tuple[Flag, ...] | list[Flag]) -> float:
    """Combine flag severities into the 0..1 score (1 = safe)."""
    score = 1.0
    for f in flags:
        score *= 1.0 - SEVERITY_WEIGHT[f.severity]
    return max(0.0, min(1.0, score))


def level_for(score: float, flags: tuple[Flag, ...] | list[Flag]) -> Level:
    """Level from the score; any critical flag is critical whatever else happened."""
    if any(f.severity == "critical" for f in flags) or score < 0.3:
        return "critical"
    if score < 0.6:
        return "high"
    if score < 0.85:
        return "medium"
    return "low"


def recommend(flags: tuple[Flag, ...] | list[Flag]) -> Recommendation:
    """The strictest action any flag asks for."""
    actions = {f.action for f in flags}
    if "block" in actions:
        return "block"
    if "require_confirmation" in actions:
        return "require_confirmation"
    return "accept"
