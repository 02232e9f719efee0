"""The payer's history from our own records: confirmed settlements by payer, and to this payTo."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from risk.addresses import is_evm_address, normalize_address
from risk.model import Flag, RiskContext


@dataclass(frozen=True, slots=True)
class PayerRecord:
    """How many confirmed settlements a payer has, in total and to one payTo."""

    total: int
    to_pay_to: int


class PayerHistory(Protocol):
    """Answers from the settlement journal (or its in-process stand-in)."""

    async def lookup(self, payer: str, pay_to: str) -> PayerRecord:
        """Counts of the payer's confirmed settlements."""
        ...

    async def add(self, payer: str, pay_to: str) -> None:
        """Note one more confirmed settlement (the Postgres journal records these itself)."""
        ...


class MemoryPayerHistory:
    """In-process counts, fed by ``RiskEngine.record``."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.pairs: dict[tuple[str, str], int] = {}

    async def lookup(self, payer: str, pay_to: str) -> PayerRecord:
        """Counts so far."""
        p, t = normalize_address(payer), normalize_address(pay_to)
        return PayerRecord(self.totals.get(p, 0), self.pairs.get((p, t), 0))

    async def add(self, payer: str, pay_to: str) -> None:
        """One more settlement."""
        p, t = normalize_address(payer), normalize_address(pay_to)
        self.totals[p] = self.totals.get(p, 0) + 1
        self.pairs[(p, t)] = self.pairs.get((p, t), 0) + 1


class PgPayerHistory:
    """Counts from the ``settlements`` table, with a short in-process cache so a hot payer costs little."""

    def __init__(self, pool: asyncpg.Pool, *, ttl: float = 10.0, max_entries: int = 50_000) -> None:
        self.pool = pool
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[tuple[str, str], tuple[float, PayerRecord]] = {}

    async def lookup(self, payer: str, pay_to: str) -> PayerRecord:
        """One indexed query (settlements_payer_confirmed), cached for ``ttl`` seconds."""
        p = normalize_address(payer)
        # the journal stores payTo as sent; EVM addresses compare case-insensitively, base58 ones exactly
        t = normalize_address(pay_to)
        key = (p, t)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        pair_sql = "lower(pay_to) = $2" if is_evm_address(t) else "pay_to = $2"
        row = await self.pool.fetchrow(
            f"""SELECT count(*) AS total, count(*) FILTER (WHERE {pair_sql}) AS pair
                FROM settlements WHERE payer = $1 AND status = 'confirmed'""",
            p,
            t,
        )
        rec = PayerRecord(int(row["total"]), int(row["pair"])) if row else PayerRecord(0, 0)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[key] = (now + self.ttl, rec)
        return rec

    async def add(self, payer: str, pay_to: str) -> None:
        """The journal already has the row; only the cached answer is now stale."""
        self._cache.pop((normalize_address(payer), normalize_address(pay_to)), None)


class PayerHistoryRule:
    """Publishes the payer's settlement counts and flags a payer never seen paying this payTo."""

    name = "first_time_payer"

    def __init__(self, history: PayerHistory) -> None:
        self.history = history

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """``first_time_payer`` when the payer has no confirmed settlement to this payTo."""
        if not ctx.payer:
            return []
        rec = await self.history.lookup(ctx.payer, ctx.pay_to)
        first = rec.to_pay_to == 0
        ctx.facts.update(payer_settlements=rec.total, payer_pay_to_settlements=rec.to_pay_to, first_time=first)
        cfg = ctx.config.rule(self.name) if ctx.config is not None else None
        if not first or cfg is None or not cfg.enabled:
            return []
        where = "anywhere" if rec.total == 0 else f"to this payTo ({rec.total} settlements elsewhere)"
        return [Flag("first_time_payer", cfg.severity, f"payer has never paid {where}", self.name, cfg.action)]
