"""A connection pool that lets a busy holder go on, but never keeps a waiter for long.

SQLAlchemy's asyncio pool keeps its idle connections in an ``asyncio.Queue`` and takes one
without waiting whenever one is there. A connection given back wakes the task that has waited
longest, but that task only runs once the one giving it back yields; a task that gives back
and asks again without yielding (a writer with its next batch ready) takes it first, and the
waiter finds the queue empty and queues again, at the back (sqlalchemy/sqlalchemy#7679), as
often as that happens: on a SQLite file, where a process has one connection, the intake's
outbox relay waited out the whole pool time-out behind the accept writer again and again,
while the rows it had published stayed leased and unmarked until their lease ran out.

Handing every connection straight to the longest waiter ends that, and costs SQLite its
throughput: there a process's turns at the file are what the pipeline runs on, and a writer
whose next batch is ready is the best use of the turn its process holds. So here, as in Go's
``sync.Mutex``, there are two modes. While no waiter has waited :data:`PATIENCE_S`, a
connection given back stays idle until the event loop's next turn, and a task that asks for
it before then (the one giving it back, going on at once) takes it; otherwise it goes to the
longest waiter then. Once a waiter has waited that long, a connection given back goes straight
to it, whoever asks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import Empty, Full, QueueCommon

_T = TypeVar("_T")

# The longest a waiter lets others go first: well inside the pool's time-out and an outbox
# lease, and a few of a busy writer's turns.
PATIENCE_S = 1.0


@dataclass(eq=False, slots=True)
class _Waiter(Generic[_T]):
    since: float
    handed: asyncio.Future[_T] = field(repr=False)

    def starving(self) -> bool:
        """Whether it has waited :data:`PATIENCE_S` by its own loop's clock: then nobody else
        goes first."""
        return self.handed.get_loop().time() - self.since >= PATIENCE_S


class FairQueue(QueueCommon[_T]):
    """Items go to waiters in the order they began to wait, and to someone who asks at once
    only while no waiter has waited :data:`PATIENCE_S`."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._items: deque[_T] = deque()
        self._waiters: deque[_Waiter[_T]] = deque()
        self._handing = False

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: _T) -> None:
        if self.full():
            raise Full()
        self._items.append(item)
        first = self._first_waiter()
        if first is None:
            return
        if first.starving():
            self._hand_idle()
        elif not self._handing:
            # Whoever asks before the loop's next turn may take it; then the waiter does.
            self._handing = True
            first.handed.get_loop().call_soon(self._hand_idle)

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        # The pool gives connections back without blocking, and it never holds more than fit.
        self.put_nowait(item)

    def get_nowait(self) -> _T:
        if not self._items:
            raise Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        if not block:
            # The pool asks so only while it may still open connections (nobody waits then)
            # and when it is disposed of.
            return self.get_nowait()
        first = self._first_waiter()
        if self._items and (first is None or not first.starving()):
            return self.get_nowait()
        return await_(self._wait(within_s=timeout))

    async def _wait(self, *, within_s: float | None) -> _T:
        loop = asyncio.get_running_loop()
        waiter: _Waiter[_T] = _Waiter(loop.time(), loop.create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(within_s):
                return await waiter.handed
        except BaseException as exc:
            handed = waiter.handed
            if handed.done() and not handed.cancelled():
                # Handed over just as the wait ended: it goes to the next in line.
                self.put_nowait(handed.result())
            else:
                handed.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Empty() from None
            raise

    def _first_waiter(self) -> _Waiter[_T] | None:
        while self._waiters and self._waiters[0].handed.done():
            self._waiters.popleft()  # gave up
        return self._waiters[0] if self._waiters else None

    def _hand_idle(self) -> None:
        """Idle items to the waiters, longest waiting first."""
        self._handing = False
        while self._items and (first := self._first_waiter()) is not None:
            self._waiters.popleft()
            first.handed.set_result(self.get_nowait())


class FairPool(AsyncAdaptedQueuePool):
    """:class:`sqlalchemy.pool.AsyncAdaptedQueuePool` on a :class:`FairQueue`."""

    _queue_class = FairQueue[ConnectionPoolEntry]
    # Its log lines are SQLAlchemy's, as the stock pool's are (under "sqlalchemy", which logs
    # from WARNING unless asked otherwise), not this module's: a pool disposed of is no news.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.FairPool"
