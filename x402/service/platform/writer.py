"""Batched payment-record writer: an asyncio queue flushed with one INSERT every ~50 ms or 500 rows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from x402.ids import fast_uuid
from x402.logs import get_logger
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
)

_TYPES = ("uuid", "uuid", "text", "text", "text", "text", "text", "text", "numeric", "text", "text", "timestamptz")
# one statement per batch, column-wise arrays; not COPY, which Postgres refuses on tables under row-level security
_INSERT = (
    f"INSERT INTO payments ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES, 1))
    + ")"
)


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
        )


_Item = tuple[PaymentRecord, "asyncio.Future[None] | None"]
_STOP = None


class PaymentWriter:
    """``write`` resolves after the record's batch committed; ``submit`` queues it (flushed at ``close``)."""

    def __init__(self, pool: asyncpg.Pool, *, interval: float = 0.05, batch: int = 500, retries: int = 5) -> None:
        self.pool = pool
        self.interval = interval
        self.batch = batch
        self.retries = retries
        self.written = 0
        self.dropped = 0
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stamps: deque[float] = deque()  # monotonic enqueue times of records not yet committed

    def backlog(self) -> tuple[int, float]:
        """Records queued or in a batch not yet committed, and the age in seconds of the oldest (saturation)."""
        stamps = self._stamps
        return len(stamps), (time.monotonic() - stamps[0]) if stamps else 0.0

    def start(self) -> None:
        """Start the flusher task (on the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="payment-writer")

    def _put(self, item: _Item) -> None:
        if self._closing:
            raise RuntimeError("the payment writer is closed")
        self.start()
        self._stamps.append(time.monotonic())
        self._queue.put_nowait(item)

    def submit(self, record: PaymentRecord) -> None:
        """Queue a record without waiting (hot path); it is durable once its batch commits."""
        self._put((record, None))

    async def write(self, record: PaymentRecord) -> None:
        """Queue a record and wait until it is committed (this is the acknowledgement)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put((record, fut))
        await fut

    async def _take(self) -> tuple[list[_Item], bool]:
        """The next batch, and whether the stop marker was reached."""
        loop = asyncio.get_running_loop()
        first = await self._queue.get()
        if first is _STOP:
            return [], True
        items = [first]
        deadline = loop.time() + self.interval
        while len(items) < self.batch:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
            if nxt is _STOP:
                return items, True
            items.append(nxt)
        return items, False

    async def _run(self) -> None:
        while True:
            items, stop = await self._take()
            if items:
                try:
                    await self._flush(items)
                finally:
                    for _ in range(min(len(items), len(self._stamps))):
                        self._stamps.popleft()
            if stop:
                return

    async def _flush(self, items: list[_Item]) -> None:
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                with system_scope("payment writer: one batch carries the records of many tenants"):
                    await self.pool.execute(
                        _INSERT, *(list(col) for col in zip(*(r.row() for r, _ in items), strict=True))
                    )
                break
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                # InternalClientError: the pool handed out a connection left busy by a cancelled task elsewhere;
                # asyncpg terminates it on release, so the retry gets a fresh one and no record is lost
                if isinstance(exc, asyncpg.UniqueViolationError) or attempt == self.retries:
                    # a batch that can never be written: fail the waiters, log the loss of queued ones
                    self.dropped += sum(1 for _, f in items if f is None)
                    log.error("payment_records_lost", count=len(items), error=type(exc).__name__)
                    for _, fut in items:
                        if fut is not None and not fut.done():
                            fut.set_exception(exc)
                    return
                log.warning("payment_records_retry", count=len(items), error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.written += len(items)
        for _, fut in items:
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def close(self) -> None:
        """Flush everything queued, then stop (nothing submitted before this call is left behind)."""
        if self._closing:
            return
        self._closing = True
        if self._task is None:
            return
        self._queue.put_nowait(_STOP)
        await self._task
