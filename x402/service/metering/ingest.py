"""Usage ingestion: validate a batch event by event, then land the good ones in one statement.

One ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING id`` per batch (COPY is refused under
row-level security): the rows it returns were new, every other valid event was a duplicate of an id the tenant
already sent (idempotent by event id per tenant). A bad event gets its own error and never stops the good ones.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg

MAX_BATCH: Final = 1000
MAX_VALUE: Final = 2**53 - 1
#: How far ahead of the server clock an event may be stamped (client clock skew).
FUTURE_SKEW: Final = timedelta(minutes=5)
ID_PATTERN: Final = r"^[A-Za-z0-9_.:@/-]{1,200}$"
METER_PATTERN: Final = r"^[a-z0-9_.:-]{1,64}$"
_ID: Final = re.compile(ID_PATTERN)
_METER: Final = re.compile(METER_PATTERN)
_MAX_PROPERTIES: Final = 4096

_INSERT: Final = (
    "INSERT INTO usage_events (tenant_id, id, customer, meter, value, ts, properties) "
    "SELECT $1, i, c, m, v, t, p::jsonb FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], "
    "$6::timestamptz[], $7::text[]) AS u(i, c, m, v, t, p) ON CONFLICT ON CONSTRAINT usage_events_id DO NOTHING "
    "RETURNING id"
)


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One valid event."""

    id: str
    customer: str
    meter: str
    value: int
    timestamp: datetime
    properties: dict[str, Any]


@dataclass(slots=True)
class BatchResult:
    """What became of a batch: ids stored now, ids already stored (or repeated in the batch), per-event errors."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        """The API answer."""
        return {"accepted": self.accepted, "duplicates": self.duplicates, "errors": self.errors}


class BadEvent(Exception):
    """One event of a batch is invalid (``code`` is machine-readable)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def as_int(value: Any, low: int = 0, high: int = MAX_VALUE) -> int | None:
    """An integer JSON number in [low, high] (``5.0`` counts, as JSON Schema says), else None."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return int(value)


def _time(raw: Any, now: datetime, late: timedelta) -> datetime:
    if raw is None:
        return now
    if not isinstance(raw, str):
        raise BadEvent("invalid_timestamp", "timestamp must be an ISO 8601 time")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadEvent("invalid_timestamp", "timestamp must be an ISO 8601 time") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when > now + FUTURE_SKEW:
        raise BadEvent("event_in_future", "timestamp is more than 5 minutes ahead of the server clock")
    if when < now - late:
        raise BadEvent("event_too_late", f"timestamp is older than the late window ({int(late.total_seconds())} s)")
    return when


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise BadEvent(f"invalid_{name}", f"{name} must be 1-200 characters of A-Z a-z 0-9 _ . : @ / -")
    return value


def parse_event(doc: Any, now: datetime, late: timedelta) -> UsageEvent:
    """One event from its JSON, or ``BadEvent``."""
    if not isinstance(doc, dict):
        raise BadEvent("invalid_event", "an event must be a JSON object")
    unknown = sorted(set(doc) - {"id", "customer", "meter", "value", "timestamp", "properties"})
    if unknown:
        raise BadEvent("invalid_event", f"unknown fields {unknown}")
    event_id, customer = _text(doc, "id"), _text(doc, "customer")
    meter = doc.get("meter")
    if not isinstance(meter, str) or not _METER.fullmatch(meter):
        raise BadEvent("invalid_meter", "meter must be 1-64 characters of a-z 0-9 _ . : -")
    value = as_int(doc.get("value", 1))
    if value is None:
        raise BadEvent("invalid_value", f"value must be an integer from 0 to {MAX_VALUE}")
    props = doc.get("properties") or {}
    if not isinstance(props, dict):
        raise BadEvent("invalid_properties", "properties must be a JSON object")
    if len(json.dumps(props, separators=(",", ":"))) > _MAX_PROPERTIES:
        raise BadEvent("invalid_properties", f"properties must be at most {_MAX_PROPERTIES} bytes of JSON")
    return UsageEvent(event_id, customer, meter, value, _time(doc.get("timestamp"), now, late), props)


def parse_batch(docs: Sequence[Any], late: timedelta) -> tuple[list[UsageEvent], BatchResult]:
    """The valid events (first of each id) and a result holding the errors and in-batch repeats."""
    now = datetime.now(UTC)
    result = BatchResult()
    events: list[UsageEvent] = []
    seen: set[str] = set()
    for index, doc in enumerate(docs):
        try:
            event = parse_event(doc, now, late)
        except BadEvent as exc:
            raw = doc.get("id") if isinstance(doc, dict) else None
            named = raw if isinstance(raw, str) else None
            result.errors.append({"index": index, "id": named, "code": exc.code, "detail": exc.detail})
            continue
        if event.id in seen:
            result.duplicates.append(event.id)
            continue
        seen.add(event.id)
        events.append(event)
    return events, result


async def store(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    tenant_id: uuid.UUID | None,
    events: Sequence[UsageEvent],
    result: BatchResult,
) -> BatchResult:
    """Land ``events`` in one statement; split them into accepted (new) and duplicates (already stored)."""
    if not events:
        return result
    rows = await conn.fetch(
        _INSERT,
        tenant_id,
        [e.id for e in events],
        [e.customer for e in events],
        [e.meter for e in events],
        [e.value for e in events],
        [e.timestamp for e in events],
        [json.dumps(e.properties, separators=(",", ":")) for e in events],
    )
    new = {r["id"] for r in rows}
    for e in events:
        (result.accepted if e.id in new else result.duplicates).append(e.id)
    return result
