"""Meters, plans with entitlements, customers on a plan, usage per billing period and the 80/90/100% warnings.

A billing period is the calendar month (UTC). A plan's limits are units per period per meter; a ``hard`` plan
stops a meter at its limit (``allowed: false``), a ``soft`` one keeps it allowed and prices the units beyond the
limit at the plan's per-unit overage. Each threshold warns once per customer, meter and period: the warning row and
its provider event are written in the transaction that stored the usage crossing it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from x402.errors import NotFound, ValidationFailed
from x402.service.events.outbox import Event, insert_events
from x402.service.metering.ingest import ID_PATTERN, METER_PATTERN, as_int

Conn = asyncpg.Connection | PoolConnectionProxy

AGGREGATIONS: Final = ("sum", "count", "max", "unique")
THRESHOLDS: Final = (80, 90, 100)
KEY_PATTERN: Final = METER_PATTERN
PRICE_PATTERN: Final = r"^[0-9]{1,30}$"
MAX_FEATURES: Final = 100
_KEY: Final = re.compile(KEY_PATTERN)
_ID: Final = re.compile(ID_PATTERN)
_PRICE: Final = re.compile(PRICE_PATTERN)
#: Channel of the cross-process entitlement-cache invalidation (payload ``<tenant>|<customer>``, ``*`` = all).
CHANNEL: Final = "x402_metering"


def tenant_text(tenant_id: uuid.UUID | None) -> str:
    """The tenant part of a cache key / notification."""
    return "" if tenant_id is None else str(tenant_id)


def tenant_is(column: str) -> str:
    """``column`` belongs to tenant ``$1`` (None = rows of no tenant), written so the index still applies."""
    return f"({column} = $1 OR ($1::uuid IS NULL AND {column} IS NULL))"


@dataclass(frozen=True, slots=True)
class Period:
    """One billing period: the calendar month holding ``now``."""

    key: str
    start: datetime
    end: datetime

    @classmethod
    def of(cls, now: datetime | None = None) -> Period:
        now = now or datetime.now(UTC)
        start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return cls(start.strftime("%Y-%m"), start, end)

    def json(self) -> dict[str, str]:
        """As the API shows it."""
        return {"key": self.key, "start": _iso(self.start), "end": _iso(self.end)}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_key(value: str, what: str) -> str:
    """A meter or plan key (path parameter), 404-free: a bad one is 422."""
    if not _KEY.fullmatch(value):
        raise ValidationFailed(f"{what} must be 1-64 characters of a-z 0-9 _ . : -", code=f"invalid_{what}")
    return value


def _fields(doc: dict[str, Any], allowed: set[str], code: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ValidationFailed(f"unknown fields {unknown}", code=code)


def _per_meter(doc: Any, name: str, check: Any) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not all(isinstance(k, str) and _KEY.fullmatch(k) for k in doc):
        raise ValidationFailed(f"{name} must map meter keys to values", code="invalid_plan")
    out = {}
    for meter, value in doc.items():
        checked = check(value)
        if checked is None:
            raise ValidationFailed(f"{name}.{meter} is not valid", code="invalid_plan")
        out[meter] = checked
    return out


def _rate(value: Any) -> dict[str, int] | None:
    if not isinstance(value, dict) or set(value) != {"credits", "per"}:
        return None
    credits, per = as_int(value["credits"]), as_int(value["per"], 1)
    return None if credits is None or per is None else {"credits": credits, "per": per}


def _j(value: Any) -> Any:
    """A jsonb column (asyncpg hands it over as text)."""
    return json.loads(value) if isinstance(value, str) else value


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def meter_json(row: asyncpg.Record) -> dict[str, Any]:
    """A meter as the API shows it."""
    return {"key": row["key"], "aggregation": row["aggregation"], "property": row["property"]}


def plan_json(row: asyncpg.Record) -> dict[str, Any]:
    """A plan as the API shows it."""
    return {
        "key": row["key"],
        "features": list(row["features"]),
        "limits": _j(row["limits"]),
        "stop": row["stop"],
        "overage": _j(row["overage"]),
        "burnRates": _j(row["burn_rates"]),
        "allowNegative": row["allow_negative"],
    }


async def notify(conn: Conn, tenant_id: uuid.UUID | None, customers: Iterable[str]) -> None:
    """Tell every process to drop cached entitlements (delivered when the caller's transaction commits)."""
    payloads = sorted({f"{tenant_text(tenant_id)}|{c}" for c in customers})
    if payloads:
        await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, payloads)


async def put_meter(conn: Conn, tenant_id: uuid.UUID | None, key: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Create or replace a meter."""
    _fields(doc, {"aggregation", "property"}, "invalid_meter")
    agg, prop = doc.get("aggregation", "sum"), doc.get("property")
    if agg not in AGGREGATIONS:
        raise ValidationFailed(f"aggregation must be one of {list(AGGREGATIONS)}", code="invalid_meter")
    if agg == "unique" and not (isinstance(prop, str) and _KEY.fullmatch(prop)):
        raise ValidationFailed("a unique-count meter needs the property it counts", code="invalid_meter")
    if agg != "unique" and prop is not None:
        raise ValidationFailed("only a unique-count meter takes a property", code="invalid_meter")
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO usage_meters (tenant_id, key, aggregation, property) VALUES ($1, $2, $3, $4)
               ON CONFLICT ON CONSTRAINT usage_meters_key DO UPDATE
               SET aggregation = excluded.aggregation, property = excluded.property, updated_at = now()
               RETURNING key, aggregation, property""",
            tenant_id,
            key,
            agg,
            prop,
        )
        await notify(conn, tenant_id, ["*"])
    assert row is not None
    return meter_json(row)


async def list_meters(conn: Conn, tenant_id: uuid.UUID | None) -> list[dict[str, Any]]:
    """The tenant's meters by key."""
    rows = await conn.fetch(
        f"SELECT key, aggregation, property FROM usage_meters WHERE {tenant_is('tenant_id')} ORDER BY key", tenant_id
    )
    return [meter_json(r) for r in rows]


async def put_plan(conn: Conn, tenant_id: uuid.UUID | None, key: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Create or replace a plan."""
    _fields(doc, {"features", "limits", "stop", "overage", "burnRates", "allowNegative"}, "invalid_plan")
    features = [] if doc.get("features") is None else doc["features"]
    if (
        not isinstance(features, list)
        or len(features) > MAX_FEATURES
        or not all(isinstance(f, str) and _KEY.fullmatch(f) for f in features)
    ):
        raise ValidationFailed("features must be a list of feature keys", code="invalid_plan")
    limits = _per_meter(doc.get("limits"), "limits", as_int)
    overage = _per_meter(
        doc.get("overage"), "overage", lambda v: v if isinstance(v, str) and _PRICE.fullmatch(v) else None
    )
    rates = _per_meter(doc.get("burnRates"), "burnRates", _rate)
    stop = doc.get("stop", "hard")
    if stop not in ("hard", "soft"):
        raise ValidationFailed("stop must be hard or soft", code="invalid_plan")
    negative = doc.get("allowNegative", False)
    if not isinstance(negative, bool):
        raise ValidationFailed("allowNegative must be a boolean", code="invalid_plan")
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO usage_plans (tenant_id, key, features, limits, stop, overage, burn_rates, allow_negative)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7::jsonb, $8)
               ON CONFLICT ON CONSTRAINT usage_plans_key DO UPDATE
               SET features = excluded.features, limits = excluded.limits, stop = excluded.stop,
                   overage = excluded.overage, burn_rates = excluded.burn_rates,
                   allow_negative = excluded.allow_negative, updated_at = now()
               RETURNING *""",
            tenant_id,
            key,
            sorted(set(features)),
            _dump(limits),
            stop,
            _dump(overage),
            _dump(rates),
            negative,
        )
        await notify(conn, tenant_id, ["*"])
    assert row is not None
    return plan_json(row)


async def list_plans(conn: Conn, tenant_id: uuid.UUID | None) -> list[dict[str, Any]]:
    """The tenant's plans by key."""
    rows = await conn.fetch(f"SELECT * FROM usage_plans WHERE {tenant_is('tenant_id')} ORDER BY key", tenant_id)
    return [plan_json(r) for r in rows]


async def put_customer(conn: Conn, tenant_id: uuid.UUID | None, customer: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Put a customer on a plan (the plan must exist)."""
    _fields(doc, {"plan"}, "invalid_customer")
    plan = doc.get("plan")
    if not isinstance(plan, str) or not _KEY.fullmatch(plan):
        raise ValidationFailed("plan must be a plan key", code="invalid_customer")
    async with conn.transaction():
        if not await conn.fetchval(
            f"SELECT 1 FROM usage_plans WHERE {tenant_is('tenant_id')} AND key = $2", tenant_id, plan
        ):
            raise ValidationFailed(f"no plan {plan!r}", code="unknown_plan")
        await conn.execute(
            """INSERT INTO usage_customers (tenant_id, id, plan) VALUES ($1, $2, $3)
               ON CONFLICT ON CONSTRAINT usage_customers_id DO UPDATE SET plan = excluded.plan, updated_at = now()""",
            tenant_id,
            customer,
            plan,
        )
        await notify(conn, tenant_id, [customer])
    return {"id": customer, "plan": plan}


def check_customer(value: str) -> str:
    """A customer id from a path (one that cannot exist is simply not found)."""
    if not _ID.fullmatch(value):
        raise NotFound("no such customer", code="customer_not_found")
    return value


_USAGE: Final = f"""
SELECT e.meter,
       (CASE coalesce(m.aggregation, 'sum')
            WHEN 'sum' THEN sum(e.value) WHEN 'count' THEN count(*) WHEN 'max' THEN max(e.value)
            ELSE count(DISTINCT e.properties ->> m.property) END)::bigint AS used
FROM usage_events e
LEFT JOIN usage_meters m ON {tenant_is("m.tenant_id")} AND m.key = e.meter
WHERE {tenant_is("e.tenant_id")} AND e.customer = $2 AND e.ts >= $3 AND e.ts < $4 AND e.meter = ANY($5::text[])
GROUP BY e.meter, m.aggregation, m.property
"""


async def usage(
    conn: Conn, tenant_id: uuid.UUID | None, customer: str, meters: Iterable[str], period: Period
) -> dict[str, int]:
    """Each meter's aggregate for the customer over the period (0 when nothing was reported)."""
    names = sorted(set(meters))
    rows = await conn.fetch(_USAGE, tenant_id, customer, period.start, period.end, names)
    out = dict.fromkeys(names, 0)
    out.update({r["meter"]: int(r["used"] or 0) for r in rows})
    return out


def reached(used: int, limit: int) -> int | None:
    """The highest threshold (80/90/100) ``used`` has reached of ``limit``."""
    hit = [t for t in THRESHOLDS if used * 100 >= limit * t]
    return hit[-1] if hit else None


async def _plan_of(conn: Conn, tenant_id: uuid.UUID | None, customer: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT p.* FROM usage_customers c JOIN usage_plans p ON {tenant_is("p.tenant_id")} AND p.key = c.plan
            WHERE {tenant_is("c.tenant_id")} AND c.id = $2""",
        tenant_id,
        customer,
    )


async def entitlements(conn: Conn, tenant_id: uuid.UUID | None, customer: str) -> dict[str, Any]:
    """What the customer may use now: features, and per limited meter usage, limit, allowed, overage."""
    plan = await _plan_of(conn, tenant_id, customer)
    if plan is None:
        raise NotFound("no such customer", code="customer_not_found")
    period = Period.of()
    limits: dict[str, int] = _j(plan["limits"])
    used = await usage(conn, tenant_id, customer, limits, period)
    meters = []
    warning: int | None = None
    for meter in sorted(limits):
        limit, n = limits[meter], used[meter]
        level = reached(n, limit) if limit else (100 if n else None)
        warning = max(warning or 0, level or 0) or None
        over = max(0, n - limit)
        price = int(_j(plan["overage"]).get(meter, "0")) if plan["stop"] == "soft" else 0
        meters.append(
            {
                "meter": meter,
                "used": n,
                "limit": limit,
                "remaining": max(0, limit - n),
                "percent": (n * 100 // limit) if limit else (100 if n else 0),
                "allowed": plan["stop"] == "soft" or n < limit,
                "overageUnits": over if plan["stop"] == "soft" else 0,
                "overageAmount": str(over * price),
            }
        )
    return {
        "customer": customer,
        "plan": plan["key"],
        "stop": plan["stop"],
        "features": list(plan["features"]),
        "period": period.json(),
        "meters": meters,
        "warning": warning,
    }


async def warn(conn: Conn, tenant_id: uuid.UUID | None, pairs: set[tuple[str, str]]) -> None:
    """After usage landed (same transaction): record and announce each threshold newly crossed this period."""
    customers = sorted({c for c, _ in pairs})
    rows = await conn.fetch(
        f"""SELECT c.id, p.key, p.limits FROM usage_customers c
            JOIN usage_plans p ON {tenant_is("p.tenant_id")} AND p.key = c.plan
            WHERE {tenant_is("c.tenant_id")} AND c.id = ANY($2::text[]) AND p.limits <> '{{}}'::jsonb""",
        tenant_id,
        customers,
    )
    if not rows:
        return
    period = Period.of()
    events: list[Event] = []
    for row in rows:
        limits: dict[str, int] = _j(row["limits"])
        meters = [m for c, m in pairs if c == row["id"] and m in limits]
        if not meters:
            continue
        used = await usage(conn, tenant_id, row["id"], meters, period)
        for meter in meters:
            limit, n = limits[meter], used[meter]
            crossed = [t for t in THRESHOLDS if n * 100 >= limit * t]
            if not crossed:
                continue
            new = await conn.fetch(
                """INSERT INTO usage_warnings (tenant_id, customer, meter, period, threshold)
                   SELECT $1, $2, $3, $4, t FROM unnest($5::int[]) AS t
                   ON CONFLICT ON CONSTRAINT usage_warnings_once DO NOTHING RETURNING threshold""",
                tenant_id,
                row["id"],
                meter,
                period.key,
                crossed,
            )
            for r in sorted(new, key=lambda r: int(r["threshold"])):
                data = {
                    "customer": row["id"],
                    "meter": meter,
                    "plan": row["key"],
                    "threshold": r["threshold"],
                    "used": n,
                    "limit": limit,
                    "period": period.key,
                }
                kind = "usage.exceeded" if r["threshold"] == 100 else "usage.threshold"
                events.append(Event(kind, data, tenant_id))
    await insert_events(conn, events)
