"""Usage reporting for providers: ``UsageClient`` batches events to ``POST /v1/events`` in the background.

``record`` only appends to an in-memory buffer (it never awaits, so it never blocks the caller's event loop); a
background task sends a batch when 100 events are waiting or 500 ms after the oldest arrived, whichever is first.
Every event gets its id on ``record``, so a batch resent after a timeout, a 5xx or a restart of the service is
counted once (the service is idempotent by event id). Failed sends are retried with exponential backoff and
jitter, forever while the client is open; ``close`` (or leaving ``async with``) flushes everything first. A client
that was never closed flushes at interpreter exit: an ``atexit`` hook (registered on the first ``record``, removed
by ``close``) posts what is still buffered synchronously, within ``exit_timeout`` seconds, and never raises.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp

from x402.logs import get_logger

log = get_logger("x402.client.usage")

RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


class UsageClient:
    """Buffered, retrying usage events for one service and API key."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        batch_size: int = 100,
        interval: float = 0.5,
        backoff: float = 0.1,
        backoff_cap: float = 5.0,
        timeout: float = 10.0,
        exit_timeout: float = 5.0,
    ) -> None:
        self.session = session
        self.url = base_url.rstrip("/") + "/v1/events"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.batch_size = batch_size
        self.interval = interval
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.exit_timeout = exit_timeout
        self._buffer: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        #: Events the service refused as invalid (per-event errors), for the caller to inspect.
        self.rejected: list[dict[str, Any]] = []
        self.sent = 0
        #: Events the service had already stored (a batch resent after its answer was lost).
        self.duplicates = 0
        self._exit_hook = False

    def record(
        self,
        customer: str,
        meter: str,
        value: int = 1,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
        properties: dict[str, Any] | None = None,
    ) -> str:
        """Queue one event (no I/O); its id."""
        if self._closing:
            raise RuntimeError("the usage client is closed")
        eid = event_id or uuid.uuid4().hex
        when = (timestamp or datetime.now(UTC)).isoformat()
        self._buffer.append(
            {
                "id": eid,
                "customer": customer,
                "meter": meter,
                "value": value,
                "timestamp": when,
                **({"properties": properties} if properties else {}),
            }
        )
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="x402-usage")
        if not self._exit_hook:
            atexit.register(self._flush_at_exit)
            self._exit_hook = True
        if len(self._buffer) >= self.batch_size:
            self._wake.set()
        return eid

    @property
    def pending(self) -> int:
        """Events recorded and not yet acknowledged by the service."""
        return len(self._buffer)

    async def _run(self) -> None:
        while True:
            if len(self._buffer) < self.batch_size and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
                await self._send(batch)
                for _ in batch:
                    self._buffer.popleft()
                if len(self._buffer) < self.batch_size and not self._closing:
                    break
            if self._closing and not self._buffer:
                return

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        """Post one batch until the service answers it (accepted, duplicate or refused per event)."""
        delay = self.backoff
        while True:
            try:
                async with self.session.post(
                    self.url, json={"events": batch}, headers=self.headers, timeout=self.timeout
                ) as r:
                    if r.status == 200:
                        doc = await r.json()
                        self._answered(doc)
                        return
                    if r.status not in RETRY_STATUSES:
                        # the batch itself is refused (a bad key, a malformed batch): retrying cannot help
                        log.error("usage_batch_refused", status=r.status, events=len(batch))
                        self.rejected += [{"id": e["id"], "code": f"http_{r.status}"} for e in batch]
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("usage_send_failed", error=type(exc).__name__, retry_in=round(delay, 3))
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
            delay = min(delay * 2, self.backoff_cap)

    def _answered(self, doc: dict[str, Any]) -> None:
        self.rejected += doc["errors"]
        self.sent += len(doc["accepted"])
        self.duplicates += len(doc["duplicates"])

    def _flush_at_exit(self) -> None:
        """At interpreter exit, for a client never closed: post the buffer synchronously within ``exit_timeout``."""
        deadline = time.monotonic() + self.exit_timeout
        try:
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
                if not self._send_sync(batch, deadline):
                    log.warning("usage_exit_flush_incomplete", events=len(self._buffer))
                    return
                for _ in batch:
                    self._buffer.popleft()
        except Exception as exc:  # an exit hook must never raise
            log.warning("usage_exit_flush_failed", error=type(exc).__name__, events=len(self._buffer))

    def _send_sync(self, batch: list[dict[str, Any]], deadline: float) -> bool:
        """Post one batch with the blocking stdlib client (the event loop is gone); False when the time ran out."""
        body = json.dumps({"events": batch}).encode()
        headers = {**self.headers, "Content-Type": "application/json"}
        delay = self.backoff
        while (left := deadline - time.monotonic()) > 0:
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=left) as r:  # noqa: S310 - the provider's own base URL
                    self._answered(json.load(r))
                    return True
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUSES:
                    log.error("usage_batch_refused", status=exc.code, events=len(batch))
                    self.rejected += [{"id": e["id"], "code": f"http_{exc.code}"} for e in batch]
                    return True
            except (OSError, ValueError) as exc:
                log.warning("usage_send_failed", error=type(exc).__name__, retry_in=round(delay, 3))
            time.sleep(max(0.0, min(delay * (0.5 + random.random()), deadline - time.monotonic())))  # noqa: S311
            delay = min(delay * 2, self.backoff_cap)
        return False

    async def flush(self) -> None:
        """Send everything recorded so far and wait until the service acknowledged it."""
        while self._buffer:
            self._wake.set()
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Flush, then stop the background task (and drop the exit hook: nothing is left for it)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._exit_hook:
            atexit.unregister(self._flush_at_exit)
            self._exit_hook = False

    async def __aenter__(self) -> UsageClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
