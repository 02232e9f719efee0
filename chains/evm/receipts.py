"""One receipt watcher per network: every settlement waiting for its receipt shares one poll loop.

A transaction-by-transaction poll loop costs one ``eth_getTransactionReceipt`` per waiting transaction and poll;
with many settlements in flight and blocks seconds apart that is most of a settle's CPU. The watcher instead asks
``eth_blockNumber`` once per tick and only when the head moved (or a transaction joined since the last sweep) asks
for the receipts of the transactions waiting, all in one JSON-RPC batch, and hands each answer to its waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from chains.evm.rpc import RpcError, RpcPool
from x402.errors import DependencyError

log = logging.getLogger("chains.evm.receipts")

#: Seconds between two looks at the head while a transaction waits.
TICK: Final = 0.05


class ReceiptWatcher:
    """Waits for receipts of one network's transactions with one shared poll loop (started while anyone waits)."""

    def __init__(self, pool: RpcPool, tick: float = TICK) -> None:
        self.pool = pool
        self.tick = tick
        self._waiters: dict[str, list[asyncio.Future[Any]]] = {}
        self._fresh: set[str] = set()  # joined since the last sweep: looked at on the next tick whatever the head
        self._head: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Transactions waiting for their receipt."""
        return len(self._waiters)

    async def wait(self, tx_id: str, timeout: float) -> Any | None:
        """The receipt of ``tx_id`` once mined, or None when ``timeout`` passes first."""
        key = tx_id.lower()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(fut)
        self._fresh.add(key)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        try:
            return await asyncio.wait_for(fut, max(timeout, 0.0))
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(fut)
                if not waiters:
                    del self._waiters[key]
                    self._fresh.discard(key)

    async def _run(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.tick)
            try:
                await self._sweep()
            except (RpcError, DependencyError) as exc:  # the waiters time out on their own; try again next tick
                log.warning("receipt watcher %s: %s", self.pool.network, exc)

    async def _sweep(self) -> None:
        head = int(await self.pool.call("eth_blockNumber", []), 16)
        moved = head != self._head
        self._head = head
        keys = list(self._waiters) if moved else [k for k in self._fresh if k in self._waiters]
        self._fresh.clear()
        if not keys:
            return
        # issued in one loop turn: the pool sends them as JSON-RPC batches
        answers = await asyncio.gather(
            *(self.pool.call("eth_getTransactionReceipt", [k]) for k in keys), return_exceptions=True
        )
        for key, receipt in zip(keys, answers, strict=True):
            if receipt is None or isinstance(receipt, BaseException):
                continue
            for fut in self._waiters.get(key, ()):
                if not fut.done():
                    fut.set_result(receipt)

    async def close(self) -> None:
        """Stop the poll loop."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
