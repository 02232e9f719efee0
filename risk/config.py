"""Tenant risk rules as JSON: enable/disable, thresholds, actions, and custom conditions.

Document shape (every key optional; omitted ones keep the defaults below)::

    {"rules": {"velocity": {"enabled": true, "max_per_minute": 30, "action": "require_confirmation"},
               "large_amount": {"threshold": "1000000000", "per_asset": {"0x8335...": "500000000"}}},
     "custom": [{"name": "burst", "when": "velocity_1m > 5 and amount > 1000000",
                 "action": "block", "severity": "high", "message": "burst of large payments"}]}

Sanctions screening is not in here: no tenant can switch it off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from risk.expr import Expression, compile_expression
from risk.model import ACTIONS, SEVERITIES, Action, Severity
from x402.errors import ValidationFailed
from x402.wire.models import is_canonical_uint

MAX_CUSTOM_RULES = 50

#: name -> (default action, default severity, {param: default}); ``None`` defaults mean "off until set".
DEFAULT_RULES: Mapping[str, tuple[Action, Severity, Mapping[str, Any]]] = {
    "velocity": (
        "require_confirmation",
        "high",
        {"max_per_minute": 30, "max_per_hour": 600, "max_amount_per_minute": None, "max_amount_per_hour": None},
    ),
    "large_amount": ("flag", "medium", {"threshold": 1_000_000_000, "per_asset": {}}),
    "first_time_payer": ("flag", "low", {}),
    "amount_anomaly": ("flag", "medium", {"sigma": 3.0, "min_samples": 10}),
    "address_lists": (
        "block",
        "critical",
        {"mixer_action": "require_confirmation", "exploit_action": "block", "deny_action": "block"},
    ),
}
_INT_PARAMS = {"max_per_minute", "max_per_hour", "max_amount_per_minute", "max_amount_per_hour", "threshold"}
_INT_PARAMS |= {"min_samples"}
_FLOAT_PARAMS = {"sigma"}
_ACTION_PARAMS = {"mixer_action", "exploit_action", "deny_action"}


class InvalidRiskConfig(ValidationFailed):
    """A tenant rule document that does not validate."""

    code = "invalid_risk_config"
    title = "Invalid risk configuration"


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One built-in rule's switch, action, severity and thresholds."""

    enabled: bool
    action: Action
    severity: Severity
    params: Mapping[str, Any]

    def param(self, name: str) -> Any:
        """A threshold value (None when unset)."""
        return self.params.get(name)


@dataclass(frozen=True, slots=True)
class CustomRule:
    """A tenant condition and what to do when it holds."""

    name: str
    expression: Expression
    action: Action
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """The effective rules for one tenant (global document overlaid with the tenant's)."""

    rules: Mapping[str, RuleConfig]
    custom: tuple[CustomRule, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict)

    def rule(self, name: str) -> RuleConfig:
        """A built-in rule's configuration (defaults when the document does not mention it)."""
        return self.rules[name]

    def enabled(self, name: str) -> bool:
        """Whether a built-in rule runs."""
        return self.rules[name].enabled


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRiskConfig(f"{where} must be an integer (atomic units), got a boolean")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        out = int(value)  # JSON Schema's integer includes 5.0; beyond 2**53 a float is not exact
    elif is_canonical_uint(value):
        out = int(value)  # amounts may come as strings, like on the wire
    else:
        raise InvalidRiskConfig(f"{where} must be a non-negative integer or decimal string, got {value!r}")
    if out < 0:
        raise InvalidRiskConfig(f"{where} must not be negative")
    return out


def _choice(value: Any, options: tuple[str, ...], where: str) -> str:
    if value not in options:
        raise InvalidRiskConfig(f"{where} must be one of {', '.join(options)}, got {value!r}")
    return str(value)


def _rule(name: str, raw: Any, base: RuleConfig) -> RuleConfig:
    where = f"rules.{name}"
    if not isinstance(raw, Mapping):
        raise InvalidRiskConfig(f"{where} must be an object")
    params = dict(base.params)
    enabled, action, severity = base.enabled, base.action, base.severity
    for key, value in raw.items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise InvalidRiskConfig(f"{where}.enabled must be true or false")
            enabled = value
        elif key == "action":
            action = cast(Action, _choice(value, ACTIONS, f"{where}.action"))
        elif key == "severity":
            severity = cast(Severity, _choice(value, SEVERITIES, f"{where}.severity"))
        elif key not in params:
            raise InvalidRiskConfig(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(params))})")
        elif key in _INT_PARAMS:
            params[key] = _int(value, f"{where}.{key}")
        elif key in _FLOAT_PARAMS:
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise InvalidRiskConfig(f"{where}.{key} must be a positive number")
            params[key] = float(value)
        elif key in _ACTION_PARAMS:
            params[key] = _choice(value, ACTIONS, f"{where}.{key}")
        elif key == "per_asset":
            if not isinstance(value, Mapping):
                raise InvalidRiskConfig(f"{where}.per_asset must map asset -> threshold")
            params[key] = {str(k).lower(): _int(v, f"{where}.per_asset.{k}") for k, v in value.items()}
    return RuleConfig(enabled, action, severity, params)


def _custom(raw: Any, index: int) -> CustomRule:
    where = f"custom[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidRiskConfig(f"{where} must be an object")
    unknown = set(raw) - {"name", "when", "action", "severity", "message"}
    if unknown:
        raise InvalidRiskConfig(f"{where}: unknown keys {sorted(unknown)}")
    name = raw.get("name")
    when = raw.get("when")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidRiskConfig(f"{where}.name must be a string of 1-64 characters")
    if not isinstance(when, str):
        raise InvalidRiskConfig(f"{where}.when must be an expression string")
    expression = compile_expression(when)  # RuleSyntaxError carries the position
    action = cast(Action, _choice(raw.get("action", "flag"), ACTIONS, f"{where}.action"))
    severity = cast(Severity, _choice(raw.get("severity", "medium"), SEVERITIES, f"{where}.severity"))
    message = raw.get("message") or f"custom rule {name} matched"
    if not isinstance(message, str) or len(message) > 300:
        raise InvalidRiskConfig(f"{where}.message must be a string of at most 300 characters")
    return CustomRule(name, expression, action, severity, message)


def default_config() -> RiskConfig:
    """The rules every tenant gets when nothing is configured."""
    rules = {n: RuleConfig(True, a, s, dict(p)) for n, (a, s, p) in DEFAULT_RULES.items()}
    return RiskConfig(rules)


def parse_config(doc: Any, base: RiskConfig | None = None) -> RiskConfig:
    """Validate a rule document and overlay it on ``base`` (the defaults, or the global document)."""
    base = base or default_config()
    if doc is None:
        return base
    if not isinstance(doc, Mapping):
        raise InvalidRiskConfig("the risk configuration must be a JSON object")
    unknown = set(doc) - {"rules", "custom"}
    if unknown:
        raise InvalidRiskConfig(f"unknown top-level keys {sorted(unknown)} (expected rules, custom)")
    rules = dict(base.rules)
    raw_rules = doc.get("rules", {})  # null, [] or 0 are not rule documents
    if not isinstance(raw_rules, Mapping):
        raise InvalidRiskConfig("rules must be an object keyed by rule name")
    for name, raw in raw_rules.items():
        if name not in rules:
            raise InvalidRiskConfig(f"unknown rule {name!r} (known: {', '.join(sorted(rules))})")
        rules[name] = _rule(name, raw, rules[name])
    raw_custom = doc.get("custom", [])
    if not isinstance(raw_custom, list) or len(raw_custom) > MAX_CUSTOM_RULES:
        raise InvalidRiskConfig(f"custom must be a list of at most {MAX_CUSTOM_RULES} rules")
    custom = base.custom + tuple(_custom(r, i) for i, r in enumerate(raw_custom))
    return RiskConfig(rules, custom, dict(doc))
