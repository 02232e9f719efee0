"""The risk engine: runs every rule concurrently under a timeout, then the tenant's custom expressions, and decides.

Stage one: built-in rules (sanctions, lists, velocity, history, anomaly, large amount, optional screening) run
together; each publishes what it measured into ``ctx.facts``. A rule that raises or overruns its timeout yields
a ``rule_error`` flag instead of failing the payment. Stage two: the tenant's custom conditions, evaluated over
those facts. The flags become a score (1 = safe, see risk.model), a level and a recommendation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Generator, Mapping, Sequence
from typing import Any

import structlog

from risk.config import RiskConfig, default_config, parse_config
from risk.history import PayerHistory
from risk.intent import infer_intent
from risk.model import Flag, RiskAssessment, RiskContext, RiskRule, level_for, recommend, score_flags
from risk.rules import ALLOW_SUPPRESSES, run_custom
from risk.stats import StatsStore, baseline_keys
from risk.store import RiskStore

log = structlog.get_logger("risk")

#: Rules that judge who the parties are (not how they behave): what ``screen`` runs.
SCREENING_RULES = frozenset({"sanctions", "address_lists", "screening", "chainalysis"})


class _Resumed:
    """Drives a coroutine that already ran up to its first suspension, inside a Task (an eager task start).

    The coroutine yielded a future (or None) to whoever drives it; this awaitable hands that on to the Task and
    feeds the Task's answers back, exactly as ``await`` would have.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, list[Flag]], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, list[Flag]]:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    result: list[Flag] = stop.value
                    return result
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    result = stop.value
                    return result


async def _finish(resumed: _Resumed) -> list[Flag]:
    return await resumed


class RiskEngine:
    """Assesses payments; one per service process, built by ``risk.build.build_engine``."""

    def __init__(
        self,
        rules: Sequence[RiskRule],
        *,
        store: RiskStore | None = None,
        stats: StatsStore | None = None,
        history: PayerHistory | None = None,
        list_versions: Mapping[str, str] | None = None,
        rule_timeout: float = 0.25,
        config_ttl: float = 5.0,
        infer_intents: bool = True,
        closers: Sequence[Any] = (),
    ) -> None:
        self.rules = list(rules)
        self.store = store
        self.stats = stats
        self.history = history
        self.list_versions = dict(list_versions or {})
        self.rule_timeout = rule_timeout
        self.config_ttl = config_ttl
        self.infer_intents = infer_intents
        self._closers = list(closers)
        self._configs: dict[str | None, tuple[float, RiskConfig]] = {}

    # ------------------------------------------------------------------------------------- config

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget cached rule documents (all of them when ``tenant_id`` is None) and cached lists."""
        if tenant_id is None:
            self._configs.clear()
        else:
            self._configs.pop(tenant_id, None)
        for rule in self.rules:
            inv = getattr(rule, "invalidate", None)
            if callable(inv):
                inv(tenant_id)

    async def config_for(self, tenant_id: str | None) -> RiskConfig:
        """Defaults, overlaid by the global document, overlaid by the tenant's; cached for ``config_ttl`` s."""
        hit = self._configs.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        cfg = default_config()
        if self.store is not None:
            cfg = parse_config(await self.store.get_config(None), cfg)
            if tenant_id is not None:
                cfg = parse_config(await self.store.get_config(tenant_id), cfg)
        self._configs[tenant_id] = (now + self.config_ttl, cfg)
        return cfg

    # ------------------------------------------------------------------------------------- assess

    @staticmethod
    async def _guarded(rule: RiskRule, ctx: RiskContext) -> list[Flag]:
        try:
            return await rule.evaluate(ctx)
        except Exception as exc:
            log.warning("risk_rule_failed", rule=rule.name, error=type(exc).__name__, detail=str(exc)[:200])
            return [Flag("rule_error", "low", f"rule {rule.name} failed: {type(exc).__name__}", rule.name)]

    async def _run_all(self, rules: Sequence[RiskRule], ctx: RiskContext) -> list[Flag]:
        """Pure in-memory rules inline; the others concurrently under ONE shared deadline (one timer, not one each:
        this runs on every /verify). A rule still running at the deadline is cancelled and reported."""
        flags: list[Flag] = []
        waiting: list[tuple[RiskRule, asyncio.Task[list[Flag]]]] = []
        for rule in rules:
            if getattr(rule, "inline", False):
                flags.extend(await self._guarded(rule, ctx))
                continue
            # most I/O rules answer from a cache: run each to its first real wait, and only then give it a task
            coro = self._guarded(rule, ctx)
            try:
                yielded = coro.send(None)
            except StopIteration as done:
                flags.extend(done.value)
                continue
            waiting.append((rule, asyncio.ensure_future(_finish(_Resumed(coro, yielded)))))
        if waiting:
            try:
                await asyncio.wait([t for _, t in waiting], timeout=self.rule_timeout)
            except asyncio.CancelledError:
                for _, task in waiting:
                    task.cancel()
                raise
            for rule, task in waiting:
                if task.done():
                    flags.extend(task.result())
                else:
                    task.cancel()
                    msg = f"rule {rule.name} timed out after {self.rule_timeout * 1000:.0f} ms"
                    flags.append(Flag("rule_error", "low", msg, rule.name))
        return flags

    async def _with_config(self, ctx: RiskContext) -> list[Flag]:
        """Attach the tenant's rules to ``ctx``; a config store outage falls back to the defaults (and says so)."""
        try:
            ctx.config = await self.config_for(ctx.tenant_id)
        except Exception as exc:  # must not stop payments
            log.warning("risk_config_unavailable", tenant=ctx.tenant_id, error=type(exc).__name__)
            ctx.config = default_config()
            return [Flag("rule_error", "low", f"tenant rules unavailable: {type(exc).__name__}", "config")]
        return []

    def _decide(self, ctx: RiskContext, flags: list[Flag], **extra: Any) -> RiskAssessment:
        if ctx.facts.get("allow_listed"):
            flags = [f for f in flags if f.rule not in ALLOW_SUPPRESSES]
        score = score_flags(flags)
        return RiskAssessment(
            score=score,
            level=level_for(score, flags),
            recommendation=recommend(flags),
            flags=tuple(flags),
            list_versions=self.list_versions,
            **extra,
        )

    async def assess(self, ctx: RiskContext) -> RiskAssessment:
        """Score one payment. Never raises for a rule's failure; the flags say what could not be checked."""
        started = time.perf_counter()
        flags = await self._with_config(ctx)
        flags.extend(await self._run_all(self.rules, ctx))
        intent = infer_intent(ctx) if self.infer_intents else None
        if intent is not None:
            ctx.facts.update(intent_tier=intent.tier or "", intent_confidence=intent.confidence)
        flags.extend(run_custom(ctx.config, ctx))
        return self._decide(ctx, flags, intent=intent, elapsed_ms=(time.perf_counter() - started) * 1000)

    async def screen(self, ctx: RiskContext) -> RiskAssessment:
        """Screen the parties only (sanctions, address lists, external screening): no behaviour is counted.

        For a payment we are about to make rather than receive, e.g. an agent wallet checking a payTo.
        """
        flags = await self._with_config(ctx)
        flags.extend(await self._run_all([r for r in self.rules if r.name in SCREENING_RULES], ctx))
        return self._decide(ctx, flags)

    async def record(self, ctx: RiskContext) -> None:
        """Learn from a settled payment: amount baselines and payer history. Failures are logged, not raised."""
        try:
            if self.stats is not None:
                await self.stats.add(baseline_keys(ctx), ctx.amount)
            if self.history is not None and ctx.payer:
                await self.history.add(ctx.payer, ctx.pay_to)
        except Exception as exc:
            log.warning("risk_record_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Close whatever the engine opened (screening HTTP sessions)."""
        for closer in self._closers:
            await closer.close()
