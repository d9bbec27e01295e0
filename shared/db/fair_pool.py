"""A connection pool that hands connections out in the order they were asked for.

SQLAlchemy's asyncio pool keeps its idle connections in an ``asyncio.Queue`` and takes one
without waiting whenever one is there. A connection given back wakes the task that has waited
longest, but that task only runs once the one giving it back yields; a task that gives back
and asks again without yielding (a writer with its next batch ready) takes it first, and the
waiter finds the queue empty and queues again, at the back (sqlalchemy/sqlalchemy#7679). On a
SQLite file, where a process has one connection, the intake's outbox relay waited behind its
accept writer for the whole pool time-out, again and again, while the rows it had published
stayed leased and unmarked.

Here a connection given back goes straight to the longest waiter; an idle one is taken at once
only when nobody waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import Empty, Full, QueueCommon

_T = TypeVar("_T")


class FairQueue(QueueCommon[_T]):
    """Items handed to waiters first come, first served."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._items: deque[_T] = deque()
        self._waiters: deque[asyncio.Future[_T]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: _T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # one that gave up is passed over
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._items.append(item)

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        # The pool gives connections back without blocking, and it never holds more than fit.
        self.put_nowait(item)

    def get_nowait(self) -> _T:
        if not self._items:
            raise Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        # Idle items only ever wait while nobody else does: put_nowait hands to waiters first.
        if self._items or not block:
            return self.get_nowait()
        return await_(self._wait(within_s=timeout))

    async def _wait(self, *, within_s: float | None) -> _T:
        waiter: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(within_s):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as the wait ended: it goes to the next in line.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Empty() from None
            raise


class FairPool(AsyncAdaptedQueuePool):
    """:class:`sqlalchemy.pool.AsyncAdaptedQueuePool` on a :class:`FairQueue`."""

    _queue_class = FairQueue[ConnectionPoolEntry]
