"""Risk scoring for x402 payments: rules, engine, sanctions lists, velocity (see risk/README.md)."""

from risk.build import RiskOptions, build_engine
from risk.engine import RiskEngine
from risk.model import RISK_BLOCKED, Flag, Intent, RiskAssessment, RiskContext, RiskRule

__all__ = [
    "RISK_BLOCKED",
    "Flag",
    "Intent",
    "RiskAssessment",
    "RiskContext",
    "RiskEngine",
    "RiskOptions",
    "RiskRule",
    "build_engine",
]
