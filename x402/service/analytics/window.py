"""Query parameters of the analytics endpoints: interval, time zone and the [from, to) window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from x402.errors import BadRequest

Conn = asyncpg.Connection | PoolConnectionProxy

INTERVALS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30), "week": timedelta(weeks=12)}
#: Most buckets one time series may have (an hourly series covers at most ~41 days).
MAX_BUCKETS = 1000
#: Longest window of a breakdown.
MAX_SPAN = timedelta(days=3660)
BREAKDOWN_SPAN = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Window:
    """The aligned window of a query: whole buckets of ``interval`` in ``tz`` (whole UTC hours for breakdowns)."""

    start: datetime
    end: datetime
    interval: str
    tz: str
    start_offset: int = 0  # UTC offsets (seconds) of start and end in tz
    end_offset: int = 0


def parse_time(request: web.Request, name: str) -> datetime | None:
    """An ISO 8601 query parameter (UTC when it carries no offset)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time", code="invalid_query", field=name) from None
    if (
        not datetime(1971, 1, 1, tzinfo=UTC)
        <= value.replace(tzinfo=value.tzinfo or UTC)
        <= datetime(9000, 1, 1, tzinfo=UTC)
    ):
        raise BadRequest(f"{name} is out of range", code="invalid_query", field=name)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_TZ_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")


def parse_tz(request: web.Request) -> str:
    """The ``tz`` parameter: an IANA time zone name (default UTC); Postgres' zone rules apply (``align``)."""
    name = request.query.get("tz", "UTC")
    if len(name) > 64 or not _TZ_NAME.fullmatch(name):
        raise BadRequest("tz must be an IANA time zone name, e.g. Europe/Berlin", code="invalid_time_zone")
    return name


def parse_interval(request: web.Request) -> str:
    """The ``interval`` parameter: hour, day or week (default day)."""
    interval = request.query.get("interval", "day")
    if interval not in INTERVALS:
        raise BadRequest("interval must be hour, day or week", code="invalid_query", field="interval")
    return interval


def raw_range(request: web.Request, default_span: timedelta) -> tuple[datetime, datetime]:
    """``from`` and ``to`` as given (defaults: the last ``default_span`` up to now); 400 unless from < to."""
    end = parse_time(request, "to") or datetime.now(UTC)
    start = parse_time(request, "from") or end - default_span
    if start >= end:
        raise BadRequest("from must be before to", code="invalid_range")
    if end - start > MAX_SPAN:
        raise BadRequest("the window may span at most 3660 days", code="range_too_large")
    return start, end


_ALIGN = """
SELECT start, "end", x402_utc_offset(start, $4) AS start_offset, x402_utc_offset("end", $4) AS end_offset
FROM (SELECT date_trunc($3, $1::timestamptz, $4) AS start,
       CASE WHEN date_trunc($3, $2::timestamptz, $4) = $2::timestamptz THEN $2::timestamptz
            WHEN $3 = 'hour' THEN date_trunc('hour', $2::timestamptz, $4) + interval '1 hour'
            ELSE ((date_trunc($3, $2::timestamptz, $4) AT TIME ZONE $4) + $5::interval) AT TIME ZONE $4 END AS "end"
     ) w
"""


async def align(conn: Conn, start: datetime, end: datetime, interval: str, tz: str) -> Window:
    """Round ``start`` down and ``end`` up to bucket boundaries in ``tz`` (Postgres' time zone rules)."""
    try:
        row = await conn.fetchrow(_ALIGN, start, end, interval, tz, INTERVALS[interval])
    except (asyncpg.InvalidParameterValueError, asyncpg.DatetimeFieldOverflowError):
        raise BadRequest(f"unknown time zone {tz!r}: use an IANA name", code="invalid_time_zone") from None
    assert row is not None
    return Window(row["start"], row["end"], interval, tz, row["start_offset"], row["end_offset"])


def whole_hours(window: Window, offsets: list[int]) -> bool:
    """True when every bucket boundary sits on a whole UTC hour (the hourly rollups then bucket exactly)."""
    return all(off % 3600 == 0 for off in (window.start_offset, window.end_offset, *offsets))


def local_iso(moment: datetime, offset: int) -> str:
    """ISO 8601 with the zone's offset at that moment."""
    return moment.astimezone(timezone(timedelta(seconds=offset))).isoformat()
