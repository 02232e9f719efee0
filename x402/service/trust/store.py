"""Trust inputs from our own records and the score table (``trust_scores``, migration 0030).

Every function takes a connection in ``system_scope``: scores are computed from every tenant's records (only
counts and shares leave this module, never another tenant's rows).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from risk.addresses import normalize_address
from wallets.events import Conn
from x402.service.trust.formula import History, score


def addr(sql: str) -> str:
    """SQL for an address the way trust keys it (``normalize_address``): EVM lower-case, anything else as written
    (Solana base58 is case-sensitive: lower-casing it would merge or miss addresses)."""
    return f"(CASE WHEN btrim({sql}) ~ '^0x[0-9a-fA-F]{{40}}$' THEN lower(btrim({sql})) ELSE btrim({sql}) END)"


_WALLET_ADDRESS = "(CASE WHEN p.network LIKE 'eip155:%' THEN w.addresses->>'evm' ELSE w.addresses->>'solana' END)"
#: Money that moved A -> B in our records (keyed by ``addr``): facilitator settlements, routed calls, wallet payments.
FLOWS: Final = f"""(
    SELECT {addr("payer")} AS src, {addr("pay_to")} AS dst FROM settlements WHERE status = 'confirmed'
    UNION SELECT {addr("payer")}, {addr("pay_to")} FROM calls WHERE status = 'paid' AND payer IS NOT NULL
    UNION SELECT {addr(_WALLET_ADDRESS)}, {addr("p.pay_to")}
          FROM wallet_payments p JOIN wallets w ON w.id = p.wallet_id
          WHERE p.status = 'committed'
)"""
FLAGGED: Final = "('deny', 'mixer', 'exploit')"
#: Payers whose settlements changed since $1 (a refresh pass recomputes their scores).
CHANGED_PAYERS: Final = f"SELECT DISTINCT {addr('payer')} AS a FROM settlements WHERE updated_at >= $1"


async def _flags(conn: Conn, addresses: list[str]) -> tuple[str, ...]:
    rows = await conn.fetch(
        f"""SELECT DISTINCT list FROM risk_address_lists
            WHERE list IN {FLAGGED} AND {addr("address")} = ANY($1::text[]) ORDER BY list""",
        [normalize_address(a) for a in addresses],
    )
    return tuple(r["list"] for r in rows)


@dataclass(frozen=True, slots=True)
class Touched:
    """The scored subjects that read some addresses (their riskFlags factor)."""

    resources: set[uuid.UUID]
    addresses: set[str]
    wallets: set[uuid.UUID]


async def listed_since(conn: Conn, since: datetime) -> list[str]:
    """Addresses (keyed by ``addr``) added to or removed from a flagging risk list since ``since``: the list store
    audits every change (a removal leaves no row behind), and an entry written without the store has its
    ``created_at``."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT {addr("a")} AS a
            FROM risk_audit, jsonb_array_elements_text(coalesce(after, before)->'addresses') AS a
            WHERE action IN ('risk.list.add', 'risk.list.remove') AND subject IN {FLAGGED} AND created_at >= $1
            UNION SELECT {addr("address")} FROM risk_address_lists WHERE list IN {FLAGGED} AND created_at >= $1""",
        since,
    )
    return [r["a"] for r in rows]


async def touched_by(conn: Conn, addresses: list[str]) -> Touched:
    """Resources paying to, scored payer addresses equal to, and wallets holding any of ``addresses``."""
    resources = await conn.fetch(
        f"SELECT id FROM resources WHERE EXISTS (SELECT 1 FROM unnest(pay_to) p WHERE {addr('p')} = ANY($1::text[]))",
        addresses,
    )
    payers = await conn.fetch(
        "SELECT subject FROM trust_scores WHERE kind = 'address' AND subject = ANY($1::text[])", addresses
    )
    wallets = await conn.fetch(
        f"""SELECT id FROM wallets
           WHERE EXISTS (SELECT 1 FROM jsonb_each_text(addresses) e WHERE {addr("e.value")} = ANY($1::text[]))""",
        addresses,
    )
    return Touched(
        resources={r["id"] for r in resources},
        addresses={r["subject"] for r in payers},
        wallets={r["id"] for r in wallets},
    )


def _days(first: datetime | None, now: datetime) -> int:
    return 0 if first is None else max(0, (now - first).days)


async def resource_history(conn: Conn, resource_id: uuid.UUID) -> History | None:
    """A listed resource: routed calls to it, its probes, its age, payees on risk lists, circular flows."""
    res = await conn.fetchrow(
        "SELECT pay_to, probes_ok, probes_total, created_at, now() AS now FROM resources WHERE id = $1", resource_id
    )
    if res is None:
        return None
    calls = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'paid') AS ok,
                  count(*) FILTER (WHERE status = 'failed') AS failed,
                  coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS volume,
                  count(DISTINCT wallet_id) FILTER (WHERE status = 'paid') AS payers
           FROM calls WHERE resource_id = $1""",
        resource_id,
    )
    assert calls is not None  # an aggregate always has a row
    top = await conn.fetchval(
        """SELECT max(v) FROM (SELECT sum(amount) AS v FROM calls WHERE resource_id = $1 AND status = 'paid'
           GROUP BY wallet_id) t""",
        resource_id,
    )
    volume = int(calls["volume"])
    pay_to = [normalize_address(p) for p in res["pay_to"]]
    circular = await conn.fetchval(
        f"""WITH f AS {FLOWS}
            SELECT EXISTS (SELECT 1 FROM f a JOIN f b ON b.src = a.dst AND b.dst = a.src
                           WHERE a.dst = ANY($1::text[]) AND a.src IN (
                               SELECT {addr("payer")} FROM calls WHERE resource_id = $2 AND status = 'paid'))""",
        pay_to,
        resource_id,
    )
    return History(
        ok=int(calls["ok"]),
        failed=int(calls["failed"]),
        volume=volume,
        counterparties=int(calls["payers"]),
        age_days=_days(res["created_at"], res["now"]),
        top_share=int(top) / volume if volume and top is not None else 0.0,
        circular=bool(circular),
        flags=await _flags(conn, pay_to),
        probes_ok=int(res["probes_ok"]),
        probes_total=int(res["probes_total"]),
    )


async def _circular(conn: Conn, address: str) -> bool:
    return bool(
        await conn.fetchval(
            f"""WITH f AS {FLOWS}
                SELECT EXISTS (SELECT 1 FROM f a JOIN f b ON b.src = a.dst AND b.dst = a.src WHERE a.src = $1)""",
            normalize_address(address),
        )
    )


async def address_history(conn: Conn, address: str) -> History:
    """A payer address: its settlements through our facilitator, risk lists, circular flows."""
    row = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE status = 'confirmed') AS ok,
                  count(*) FILTER (WHERE status = 'failed') AS failed,
                  coalesce(sum(amount) FILTER (WHERE status = 'confirmed'), 0) AS volume,
                  count(DISTINCT {addr("pay_to")}) FILTER (WHERE status = 'confirmed') AS payees,
                  min(created_at) AS first, now() AS now
           FROM settlements WHERE {addr("payer")} = $1""",
        normalize_address(address),
    )
    assert row is not None  # an aggregate always has a row
    return History(
        ok=int(row["ok"]),
        failed=int(row["failed"]),
        volume=int(row["volume"]),
        counterparties=int(row["payees"]),
        age_days=_days(row["first"], row["now"]),
        circular=await _circular(conn, address),
        flags=await _flags(conn, [address]),
    )


async def wallet_history(conn: Conn, wallet_id: uuid.UUID) -> History | None:
    """An agent wallet: its ledger (committed vs released after sending), age, its address's flags and flows."""
    wallet = await conn.fetchrow(
        """SELECT ARRAY(SELECT value FROM jsonb_each_text(addresses) ORDER BY key) AS addresses, created_at,
                  now() AS now FROM wallets WHERE id = $1""",
        wallet_id,
    )
    if wallet is None:
        return None
    row = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE status = 'committed') AS ok,
                  count(*) FILTER (WHERE status = 'released' AND sent_at IS NOT NULL) AS failed,
                  coalesce(sum(amount) FILTER (WHERE status = 'committed'), 0) AS volume,
                  count(DISTINCT {addr("pay_to")}) FILTER (WHERE status = 'committed') AS payees
           FROM wallet_payments WHERE wallet_id = $1""",
        wallet_id,
    )
    assert row is not None  # an aggregate always has a row
    addresses = [a for a in wallet["addresses"] if a]
    return History(
        ok=int(row["ok"]),
        failed=int(row["failed"]),
        volume=int(row["volume"]),
        counterparties=int(row["payees"]),
        age_days=_days(wallet["created_at"], wallet["now"]),
        circular=any([await _circular(conn, a) for a in addresses]),
        flags=await _flags(conn, addresses) if addresses else (),
    )


async def save(conn: Conn, kind: str, subject: str, history: History) -> dict[str, Any]:
    """Compute and upsert one score; returns its wire shape."""
    value, factors = score(history, resource=kind == "resource")
    await conn.execute(
        """INSERT INTO trust_scores (kind, subject, score, factors, computed_at) VALUES ($1, $2, $3, $4::jsonb, now())
           ON CONFLICT (kind, subject) DO UPDATE SET score = $3, factors = $4::jsonb, computed_at = now()""",
        kind,
        subject,
        value,
        json.dumps(factors),
    )
    return {"score": value, "factors": factors}


def wire(rec: asyncpg.Record | None) -> dict[str, Any] | None:
    """``{score, factors, computedAt}`` of a stored row."""
    if rec is None:
        return None
    factors = rec["factors"]
    return {
        "score": int(rec["score"]),
        "factors": json.loads(factors) if isinstance(factors, str) else factors,
        "computedAt": rec["computed_at"].isoformat(),
    }


async def get(conn: Conn, kind: str, subject: str) -> dict[str, Any] | None:
    """A stored score, or None."""
    rec = await conn.fetchrow(
        "SELECT score, factors, computed_at FROM trust_scores WHERE kind = $1 AND subject = $2", kind, subject
    )
    return wire(rec)
