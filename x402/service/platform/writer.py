"""Group-commit writer of payment records and their provider events (the transactional outbox).

A request hands its record (and the events it causes) to ``write`` and waits: records queued meanwhile are
committed together (one statement: the records and their events, as ``insert_events`` writes them), so the answer
goes out only once what it reports is durable. A batch that cannot be written after bounded retries goes to the
``record_dead_letters`` table (rows as JSON + the error; retried by ``deadletters.retry_loop``, replayable by the
operator); only when even that write fails does ``write`` raise ``DatabaseUnavailable`` (a 503 naming Postgres).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import msgspec

from x402.errors import DatabaseUnavailable
from x402.ids import fast_uuid
from x402.logs import get_logger
from x402.service.events.outbox import API_VERSION, EVENT_TYPES, Conn, Event, insert_events
from x402.service.metrics import Metrics
from x402.service.storage.scope import system_scope

log = get_logger("x402.service.platform.writer")

COLUMNS = (
    "id",
    "tenant_id",
    "kind",
    "status",
    "network",
    "asset",
    "payer",
    "pay_to",
    "amount",
    "tx",
    "reason",
    "created_at",
    # analytics (migration 0020): what was paid for, how long the facilitator took, the risk outcome
    "resource",
    "method",
    "latency_ms",
    "risk",
    "risk_level",
    "risk_flags",
)

_TYPES = ("uuid", "uuid", "text", "text", "text", "text", "text", "text", "numeric", "text", "text", "timestamptz")
_ALL_TYPES = (*_TYPES, "text", "text", "float8", "text", "text", "text")  # the analytics columns
_N = len(COLUMNS)
_EVENT_TYPES = frozenset(EVENT_TYPES)
# The registry listing of a record's resource (migration 0040 moved it here from 0020's per-row trigger; the same
# rule as ``x402_payment_resource_id``): the tenant's own listing first, else one of no tenant; GET first, oldest.
_RESOURCE = (
    "LEFT JOIN LATERAL (SELECT x.id FROM resources x WHERE u.resource <> '' AND x.url = u.resource"
    " AND (u.method = '' OR x.method = u.method) AND (x.tenant_id = u.tenant_id OR x.tenant_id IS NULL)"
    " ORDER BY (x.tenant_id IS NULL), (x.method = 'GET') DESC, x.created_at LIMIT 1) res ON true"
)
# One JSON document per batch (``jsonb_to_recordset``), not COPY, which Postgres refuses on tables under row-level
# security, and not one typed array per column: encoding 23 arrays element by element (asyncpg checks every element
# against the collection ABCs) cost ~200 us of the server's CPU per batch and Postgres ~480 us to unnest them; the
# JSON form (msgspec encodes the records' dataclasses directly) costs ~50 us and ~175 us (measured 2026-12-04,
# batches of 3, issue 19). The column names of the record set are the dataclass fields, so the text is fixed.
# ON CONFLICT: a batch retried after a commit whose acknowledgement was lost (or replayed) writes nothing twice
_RECORDSET = ", ".join(f"{c} {t}" for c, t in zip(COLUMNS, _ALL_TYPES, strict=True))
_INSERT = (
    f"INSERT INTO payments ({', '.join(COLUMNS)}, resource_id) SELECT u.*, res.id"
    f" FROM jsonb_to_recordset($1::jsonb) AS u({_RECORDSET}) {_RESOURCE} ON CONFLICT (id) DO NOTHING"
)
# An event no active endpoint of its tenant subscribes to is written already dispatched: the dispatcher would fan
# it out to nobody and only mark it (an UPDATE per event). Same test as the dispatcher's fan-out, in the same
# statement snapshot: an endpoint active before the event is inserted still gets it (unchanged), one created after
# never had a guarantee of events older than itself (the dispatcher fans out to the endpoints active when it runs).
# The writer runs in the system scope, so row-level security hides no endpoint from this check.
_UNSUBSCRIBED = (
    "NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.active AND w.tenant_id = u.tenant_id"
    " AND (u.type = ANY (w.events) OR '*' = ANY (w.events)))"
    " AND NOT (u.tenant_id IS NULL AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.active"
    " AND w.tenant_id IS NULL AND (u.type = ANY (w.events) OR '*' = ANY (w.events))))"
)
# A whole batch in ONE statement (atomic by itself, one round trip instead of BEGIN, two INSERTs and COMMIT): the
# records, and the events as ``insert_events`` writes them (same columns, same ON CONFLICT) plus ``dispatched``.
# Batches are small (a few ms of answers), so the round trips, not the rows, are what a verify would pay for. The
# text does not depend on the batch size, so asyncpg prepares it once per connection and reuses it.
_BATCH = (
    f"WITH p AS ({_INSERT}), e AS (INSERT INTO provider_events"
    " (id, tenant_id, type, api_version, data, created_at, dispatched)"
    f" SELECT u.id, u.tenant_id, u.type, $2, u.data, u.created_at, {_UNSUBSCRIBED}"
    " FROM jsonb_to_recordset($3::jsonb) AS u(id uuid, tenant_id uuid, type text, data jsonb, created_at timestamptz)"
    " ON CONFLICT (id) DO NOTHING) SELECT 1"
)


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Mapping):  # an event's data may be any mapping
        return dict(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} in a payment batch")


_JSON = msgspec.json.Encoder(enc_hook=_enc_hook)
_DEAD_LETTER = "INSERT INTO record_dead_letters (records, events, count, error) VALUES ($1::jsonb, $2::jsonb, $3, $4)"
#: Errors of the database or the way to it (InternalClientError: a connection left busy by a cancelled task,
#: terminated on release, so a retry gets a fresh one).
DB_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)
#: SQLSTATE classes no retry can fix: data exceptions, integrity violations, privileges / undefined objects.
_PERMANENT = ("22", "23", "42", "44")
#: Of those, the ones a single row causes: a batch holding such a row is split to find it.
_ROW_CAUSED = ("22", "23")


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One verify / settle / verify-tx outcome."""

    kind: str
    status: str
    network: str
    tenant_id: uuid.UUID | None = None
    asset: str = ""
    payer: str | None = None
    pay_to: str = ""
    amount: int = 0
    tx: str | None = None
    reason: str | None = None
    id: uuid.UUID = field(default_factory=fast_uuid)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    resource: str = ""
    method: str = ""
    latency_ms: float | None = None
    risk: str | None = None
    risk_level: str | None = None
    risk_flags: str | None = None

    def row(self) -> tuple[object, ...]:
        """Values in COLUMNS order."""
        return (
            self.id,
            self.tenant_id,
            self.kind,
            self.status,
            self.network,
            self.asset,
            self.payer,
            self.pay_to,
            self.amount,
            self.tx,
            self.reason,
            self.created_at,
            self.resource,
            self.method,
            self.latency_ms,
            self.risk,
            self.risk_level,
            self.risk_flags,
        )

    def json(self) -> dict[str, Any]:
        """The row as JSON, keyed by column (what a dead letter keeps; ``jsonb_populate_recordset`` reads it)."""
        return {
            c: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID | int) else v)
            for c, v in zip(COLUMNS, self.row(), strict=True)
        }


_Timed = TypeVar("_Timed", PaymentRecord, Event)


async def write_batch(conn: Conn, records: Sequence[PaymentRecord], events: Sequence[Event]) -> None:
    """Insert ``records`` and ``events`` atomically in one statement (an id already written is skipped)."""
    if not records:
        await insert_events(conn, events)
        return
    unknown = {e.type for e in events} - _EVENT_TYPES
    if unknown:
        raise ValueError(f"unknown event types: {sorted(unknown)}")
    try:
        rows, evs = _JSON.encode([_utc(r) for r in records]), _JSON.encode([_utc(e) for e in events])
    except (TypeError, ValueError, OverflowError) as exc:  # what asyncpg says of an argument it cannot encode
        raise asyncpg.DataError(f"invalid input for the batch: {exc}") from exc
    await conn.execute(_BATCH, rows.decode(), API_VERSION, evs.decode())


def _utc(item: _Timed) -> _Timed:
    """A naive ``created_at`` taken as local time, as asyncpg takes it for a ``timestamptz`` (JSON would leave it to
    the session's time zone)."""
    at = item.created_at
    return item if at.tzinfo is not None else dataclasses.replace(item, created_at=at.astimezone(UTC))


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "")


def permanent(exc: BaseException) -> bool:
    """True when retrying the same statement cannot succeed."""
    return _sqlstate(exc)[:2] in _PERMANENT


def describe(exc: BaseException) -> str:
    """The error as a dead letter keeps it: class, SQLSTATE and message (never row values beyond Postgres' own)."""
    state = _sqlstate(exc)
    return f"{type(exc).__name__}{f' [{state}]' if state else ''}: {exc}"[:2000]


_Item = tuple[PaymentRecord | None, tuple[Event, ...], "asyncio.Future[None] | None"]


class PaymentWriter:
    """``write`` resolves once the record and its events are durable (committed, or dead-lettered).

    ``flushers`` batches commit at once; a batch is whatever queued while the flushers were busy (natural group
    commit: an idle writer commits a lone record at once, a busy one gathers the records that arrive during a
    COMMIT). A flusher is a task that, once its batch is committed, goes straight on with what queued meanwhile
    and ends when nothing waits; a record that finds a flusher free starts one. No task sits between the queue
    and the flushers: a record waits for one event-loop turn before its batch goes out, and none between batches
    (issue 15: two turns fewer per answer than a dispatcher task handing batches to flusher tasks).

    ``interval`` > 0 additionally waits that long after a batch's first item (fewer, larger batches at the cost of
    that much latency on every answer; measured 2026-12-04: 2 ms cost /verify 22% of its throughput at 16
    connections). ``submit`` queues without waiting (kept for bulk loads; flushed at ``close``).

    Three flushers by default (each keeps one pool connection): against two, /verify at 16 connections used 0-9%
    less server CPU per answer, Postgres CPU within +-5% (four same-conditions runs of bench/verify_ab.py and its
    prototype, 2026-12-04, issue 19): a small gain, kept because it was never a loss.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 0.0,
        batch: int = 500,
        retries: int = 3,
        flushers: int = 3,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.interval = interval
        self.batch = batch
        self.retries = retries
        self.metrics = metrics
        self.written = 0
        self.dead_lettered = 0
        self.dropped = 0
        self._flushers = max(1, flushers)
        self._pending: deque[_Item] = deque()  # queued, not yet in a batch
        self._tasks: set[asyncio.Task[None]] = set()  # the running flushers
        self._idle: asyncio.Event | None = None  # set when the last flusher ends while closing
        self._held: list[Any] = []  # connections kept by the flushers (at most ``flushers``)
        self._closing = False
        self._stamps: deque[float] = deque()  # monotonic enqueue times of records not yet committed

    def backlog(self) -> tuple[int, float]:
        """Records queued or in a batch not yet committed, and the age in seconds of the oldest (saturation)."""
        stamps = self._stamps
        return len(stamps), (time.monotonic() - stamps[0]) if stamps else 0.0

    def _put(self, item: _Item) -> None:
        if self._closing:
            raise DatabaseUnavailable("the payment record writer is shutting down")
        self._stamps.append(time.monotonic())
        self._pending.append(item)
        if len(self._tasks) < self._flushers:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with system_scope("payment writer: one batch carries the records of many tenants"):
            task = asyncio.get_running_loop().create_task(self._flusher(), name="payment-writer")
        self._tasks.add(task)
        task.add_done_callback(self._flusher_done)

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pending and len(self._tasks) < self._flushers:
            self._start_flusher()  # a flusher that died of a bug leaves no record behind
        elif not self._tasks and self._idle is not None:
            self._idle.set()

    def submit(self, record: PaymentRecord, events: Sequence[Event] = ()) -> None:
        """Queue a record without waiting; it is durable once its batch commits (or is dead-lettered)."""
        self._put((record, tuple(events), None))

    async def write(self, record: PaymentRecord | None, events: Sequence[Event] = ()) -> None:
        """Queue a record (or events alone) and wait until durable: this is the acknowledgement."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put((record, tuple(events), fut))
        await fut

    async def _flusher(self) -> None:
        """Commit batches while records wait: whatever queued up to this turn, up to ``batch`` at a time."""
        pending = self._pending
        while pending:
            if self.interval > 0 and len(pending) < self.batch:
                await asyncio.sleep(self.interval)
            items = [pending.popleft() for _ in range(min(len(pending), self.batch))]
            try:
                await self._flush(items)
            except BaseException as exc:  # a bug, not the database: no waiter may hang on it
                log.exception("payment_writer_error", count=len(items))
                _settle(items, exc)
                raise
            finally:
                # batches may finish out of order: the oldest stamps go first, so the age is an upper bound
                for _ in range(min(len(items), len(self._stamps))):
                    self._stamps.popleft()

    async def _insert(self, items: list[_Item]) -> BaseException | None:
        """Commit the batch (bounded retries); the last error when it could not be written."""
        records = [r for r, _, _ in items if r is not None]
        events = [e for _, evs, _ in items for e in evs]
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                conn = self._held.pop() if self._held else await self.pool.acquire()
            except DB_ERRORS as exc:
                error: BaseException = exc
            else:
                try:
                    await write_batch(conn, records, events)
                except BaseException as exc:
                    await self.pool.release(conn)  # the pool resets it, or drops a broken one
                    if not isinstance(exc, DB_ERRORS):
                        raise
                    error = exc
                else:
                    # kept checked out between batches: no acquire and no release reset (a round trip) per batch
                    self._held.append(conn)
                    return None
            if permanent(error) or attempt == self.retries:
                return error
            log.warning("payment_records_retry", count=len(items), error=type(error).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    async def _flush(self, items: list[_Item]) -> None:
        error = await self._insert(items)
        if error is not None and _sqlstate(error)[:2] in _ROW_CAUSED and len(items) > 1:
            # one bad row must not take the others with it: halve until it is alone
            mid = len(items) // 2
            await self._flush(items[:mid])
            await self._flush(items[mid:])
            return
        if error is None:
            self.written += len(items)
            _settle(items, None)
            return
        await self._dead_letter(items, error)

    async def _dead_letter(self, items: list[_Item], error: BaseException) -> None:
        """Keep a batch that cannot be written; its waiters are acknowledged only once it is kept."""
        records = [r.json() for r, _, _ in items if r is not None]
        events = [e.envelope() for _, evs, _ in items for e in evs]
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(_DEAD_LETTER, json.dumps(records), json.dumps(events), len(items), describe(error))
        except DB_ERRORS as exc:
            self.dropped += sum(1 for _, _, f in items if f is None)
            log.error("payment_records_lost", count=len(items), error=describe(error), dead_letter_error=describe(exc))
            _settle(items, DatabaseUnavailable("payment records could not be written to Postgres"))
            return
        self.dead_lettered += len(items)
        if self.metrics is not None:
            self.metrics.records_dead_lettered.inc(len(records))
            self.metrics.events_dead_lettered.inc(len(events))
        log.error("payment_records_dead_lettered", count=len(items), error=describe(error))
        _settle(items, None)

    async def close(self) -> None:
        """Flush everything queued, then stop (nothing submitted or written before this call is left behind)."""
        if self._closing:
            return
        self._closing = True
        if self._tasks:
            self._idle = asyncio.Event()
            await self._idle.wait()
        while self._held:
            await self.pool.release(self._held.pop())


def _settle(items: list[_Item], error: BaseException | None) -> None:
    for _, _, fut in items:
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
