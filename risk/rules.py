"""Address-list and amount rules, and the second stage that runs tenants' custom expressions."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from risk.addresses import normalize_address
from risk.config import RiskConfig
from risk.expr import RuleEvalError
from risk.model import Action, Flag, RiskContext, Severity
from risk.store import AddressLists, RiskStore

#: Rules whose flags an allow-listed payer does not get (sanctions, screening and deny lists still apply).
ALLOW_SUPPRESSES = frozenset({"velocity", "amount_anomaly", "first_time_payer", "large_amount"})


def load_shipped_lists() -> tuple[AddressLists, str]:
    """The exchange/mixer/exploit addresses shipped as package data, and their version (blocking: start-up)."""
    doc = json.loads(resources.files("risk").joinpath("data", "address_lists.json").read_text())
    lists = {
        name: frozenset(normalize_address(a) for a in entries)
        for name, entries in (doc.get("lists") or {}).items()
        if isinstance(entries, dict)
    }
    return AddressLists(lists), str(doc.get("version", "unknown"))


class AddressListRule:
    """Deny, mixer and exploit lists flag; exchange is informational; allow suppresses behavioural flags."""

    name = "address_lists"

    def __init__(self, store: RiskStore | None, shipped: AddressLists, *, ttl: float = 5.0) -> None:
        self.store = store
        self.shipped = shipped
        self.ttl = ttl
        self._cache: dict[str | None, tuple[float, AddressLists]] = {}
        self._locks: dict[str | None, asyncio.Lock] = {}

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Drop cached lists (after a change made through this process)."""
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    async def lists(self, tenant_id: str | None) -> AddressLists:
        """Shipped + global + tenant lists, refreshed from the store every ``ttl`` seconds (single flight)."""
        hit = self._cache.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        if self.store is None:
            return self.shipped
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            hit = self._cache.get(tenant_id)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            merged = self.shipped.merged(await self.store.lists_for(tenant_id))
            self._cache[tenant_id] = (time.monotonic() + self.ttl, merged)
            return merged

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """Flags for payer/payTo on the deny, mixer or exploit lists; facts for the expressions."""
        lists = await self.lists(ctx.tenant_id)
        payer, pay_to = normalize_address(ctx.payer), normalize_address(ctx.pay_to)
        ctx.facts.update(
            deny_list=lists.get("deny"),
            allow_list=lists.get("allow"),
            exchange_list=lists.get("exchange"),
            mixer_list=lists.get("mixer"),
            exploit_list=lists.get("exploit"),
            allow_listed=bool(payer) and payer in lists.get("allow"),
        )
        cfg = ctx.config.rule(self.name) if ctx.config is not None else None
        if cfg is None or not cfg.enabled:
            return []
        plan: tuple[tuple[str, str, Any, Severity], ...] = (
            ("deny", "deny_listed", cfg.param("deny_action"), "critical"),
            ("exploit", "exploit_address", cfg.param("exploit_action"), "critical"),
            ("mixer", "mixer_address", cfg.param("mixer_action"), "high"),
            ("exchange", "exchange_address", "flag", "info"),
        )
        flags = []
        for list_name, code, action, severity in plan:
            members = lists.get(list_name)
            for role, addr in (("payer", payer), ("payTo", pay_to)):
                if addr and addr in members:
                    msg = f"{role} {addr} is on the {list_name} list"
                    flags.append(Flag(f"{code}", severity, msg, self.name, action))
        return flags


class LargeAmountRule:
    """Flags an amount above the tenant's threshold (per asset when configured)."""

    name = "large_amount"
    inline = True  # arithmetic only

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """``large_amount`` when amount > threshold."""
        cfg = ctx.config.rule(self.name) if ctx.config is not None else None
        if cfg is None or not cfg.enabled:
            return []
        per_asset = cfg.param("per_asset") or {}
        threshold = per_asset.get(ctx.asset.lower(), cfg.param("threshold"))
        if threshold is None or ctx.amount <= threshold:
            return []
        msg = f"amount {ctx.amount} is above the threshold {threshold}"
        return [Flag("large_amount", cfg.severity, msg, self.name, cfg.action)]


def expression_env(ctx: RiskContext) -> dict[str, Any]:
    """The fixed variable set of the expression language, from the payment and the first stage's facts."""
    when = datetime.fromtimestamp(ctx.timestamp, UTC)
    env: dict[str, Any] = dict(ctx.facts)
    env.update(
        amount=ctx.amount,
        network=ctx.network,
        asset=normalize_address(ctx.asset),
        scheme=ctx.scheme,
        payer=normalize_address(ctx.payer),
        pay_to=normalize_address(ctx.pay_to),
        resource=ctx.resource,
        tenant=ctx.tenant_id or "",
        hour_utc=when.hour,
        weekday=when.weekday(),
    )
    return env


def run_custom(config: RiskConfig, ctx: RiskContext) -> list[Flag]:
    """Evaluate every custom rule; a rule that fails at run time yields ``rule_error`` instead of a verdict."""
    if not config.custom:
        return []
    env = expression_env(ctx)
    flags = []
    for rule in config.custom:
        try:
            hit = rule.expression.evaluate(env)
        except (RuleEvalError, TypeError, ArithmeticError) as exc:
            msg = f"custom rule {rule.name} failed: {exc}"
            flags.append(Flag("rule_error", "low", msg, f"custom:{rule.name}"))
            continue
        if hit:
            action: Action = rule.action
            flags.append(Flag(f"custom_{rule.name}", rule.severity, rule.message, f"custom:{rule.name}", action))
    return flags
