"""Payment records of the calling tenant: list with filters and cursor pagination, one record, usage summary."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from x402.errors import BadRequest, NotFound
from x402.service.appkeys import PLATFORM
from x402.service.http import json_response as _json
from x402.service.platform.auth import require_tenant
from x402.service.platform.limiting import month_key
from x402.service.platform.tenants import parse_uuid

routes = web.RouteTableDef()

MAX_LIMIT = 500
#: Outcomes where the payment was good (money moved, or a valid authorization was seen).
GOOD = ("valid", "success", "verified")
_FILTERS = {"status": "status", "network": "network", "payer": "payer", "payTo": "pay_to", "kind": "kind"}


def payment_json(row: Any) -> dict[str, Any]:
    """A payment record as the API shows it (amount as a string of atomic units, optional fields omitted)."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "network": row["network"],
        "asset": row["asset"],
        "payTo": row["pay_to"],
        "amount": str(int(row["amount"])),
        "createdAt": row["created_at"].isoformat(),
    }
    for col, key in (("payer", "payer"), ("tx", "transaction"), ("reason", "reason")):
        if row[col] is not None:
            out[key] = row[col]
    if row["resource"]:
        out["resource"] = row["resource"]
        if row["method"]:
            out["method"] = row["method"]
    if row["risk"] is not None:
        # the risk stage's assessment of this payment (migration 0020): recommendation, level, flag codes
        flags = row["risk_flags"]
        out["risk"] = {
            "recommendation": row["risk"],
            "level": row["risk_level"],
            "flags": flags.split(",") if flags else [],
        }
    return out


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time", code="invalid_query") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: ``<microseconds since 1970>.<row uuid as 32 hex digits>``; the OpenAPI document publishes this pattern, so any
#: cursor it allows is a position (a position no row has just continues after it, possibly with an empty page).
CURSOR_PATTERN = r"^([0-9]{1,17}\.[0-9a-f]{32})?$"
_CURSOR = re.compile(r"([0-9]{1,17})\.([0-9a-f]{32})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """Position after a row."""
    return f"{(created_at - _EPOCH) // timedelta(microseconds=1)}.{row_id.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names; 400 when it does not have the documented shape."""
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise BadRequest("invalid cursor: expected <microseconds>.<32 hex digits>", code="invalid_cursor")
    return _EPOCH + timedelta(microseconds=int(match[1])), uuid.UUID(hex=match[2])


@routes.get("/v1/payments")
async def list_payments(request: web.Request) -> web.Response:
    """Newest first; filters status, kind, network, payer, payTo, from, to; ``cursor`` continues a listing."""
    principal = require_tenant(request)
    where = ["tenant_id = $1"]
    args: list[Any] = [principal.tenant_id]
    for param, col in _FILTERS.items():
        value = request.query.get(param)
        if value is not None:
            args.append(value)
            where.append(f"{col} = ${len(args)}")
    for param, op in (("from", ">="), ("to", "<")):
        moment = _time(request, param)
        if moment is not None:
            args.append(moment)
            where.append(f"created_at {op} ${len(args)}")
    cursor = request.query.get("cursor")
    if cursor:
        at, rid = decode_cursor(cursor)
        args += [at, rid]
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise BadRequest("limit must be an integer", code="invalid_query") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}", code="invalid_query")
    args.append(limit + 1)
    rows = await request.app[PLATFORM].store.pool.fetch(
        f"SELECT * FROM payments WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
        *args,
    )
    body: dict[str, Any] = {"data": [payment_json(r) for r in rows[:limit]], "hasMore": len(rows) > limit}
    if len(rows) > limit:
        last = rows[limit - 1]
        body["nextCursor"] = encode_cursor(last["created_at"], last["id"])
    return _json(body)


# a UUID only, so /v1/payments/verify-tx does not also answer GET (its Allow header stays exact)
@routes.get("/v1/payments/{id:[0-9a-fA-F-]{36}}")
async def get_payment(request: web.Request) -> web.Response:
    """One payment record of the calling tenant."""
    principal = require_tenant(request)
    row = await request.app[PLATFORM].store.pool.fetchrow(
        "SELECT * FROM payments WHERE id = $1 AND tenant_id = $2",
        parse_uuid(request.match_info["id"]),
        principal.tenant_id,
    )
    if row is None:
        raise NotFound("no such payment")
    return _json(payment_json(row))


@routes.get("/v1/usage")
async def usage(request: web.Request) -> web.Response:
    """Counts by kind and status, volume by network and asset, unique payers, repeat rate, this month's quota."""
    principal = require_tenant(request)
    assert principal.tenant_id is not None
    platform = request.app[PLATFORM]
    now = datetime.now(UTC)
    start = _time(request, "from") or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = _time(request, "to") or now
    args = (principal.tenant_id, start, end)
    scope = "tenant_id = $1 AND created_at >= $2 AND created_at < $3"
    async with platform.store.pool.acquire() as conn:
        counts = await conn.fetch(
            f"SELECT kind, status, count(*) AS n FROM payments WHERE {scope} GROUP BY 1, 2", *args
        )
        volume = await conn.fetch(
            f"""SELECT network, asset, count(*) AS n, sum(amount) AS total FROM payments
                WHERE {scope}
                  AND ((kind = 'settle' AND status = 'success') OR (kind = 'verify_tx' AND status = 'verified'))
                GROUP BY 1, 2 ORDER BY 1, 2""",
            *args,
        )
        payers = await conn.fetchrow(
            f"""SELECT count(*) AS uniq, count(*) FILTER (WHERE n > 1) AS repeat FROM (
                    SELECT payer, count(*) AS n FROM payments
                    WHERE {scope} AND payer IS NOT NULL AND status = ANY($4::text[]) GROUP BY payer) s""",
            *args,
            list(GOOD),
        )
    by_kind: dict[str, dict[str, int]] = {}
    for r in counts:
        by_kind.setdefault(r["kind"], {})[r["status"]] = int(r["n"])
    assert payers is not None
    uniq, repeat = int(payers["uniq"]), int(payers["repeat"])
    tier = platform.tier(principal.tier)
    used = await platform.quota.used(str(principal.tenant_id), now)
    return _json(
        {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "counts": by_kind,
            "total": sum(sum(v.values()) for v in by_kind.values()),
            "volume": [
                {"network": r["network"], "asset": r["asset"], "count": int(r["n"]), "amount": str(int(r["total"]))}
                for r in volume
            ],
            "uniquePayers": uniq,
            "repeatPayers": repeat,
            "repeatRate": round(repeat / uniq, 4) if uniq else 0.0,
            "quota": {
                "period": month_key(now),
                "tier": tier.name,
                "used": used,
                "limit": tier.monthly_quota,
                "overage": max(0, used - tier.monthly_quota) if tier.overage else 0,
            },
        }
    )
