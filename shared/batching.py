"""Group commit: requests that arrive while one batch is being written go together in the next.

A request hands its item to :meth:`Batcher.submit` and waits for its own result. One task
writes: it takes whatever is waiting (up to ``max_batch``), hands the lot to ``handle`` and
answers each request; whatever arrived meanwhile is the next batch. An idle batcher writes a
lone item at once, so a quiet service waits no longer than before; a busy one pays one round
trip, one pooled connection and (on PostgreSQL) one commit per batch instead of per request.
With ``linger_s``, a batch that would start under ``linger_s`` after the last write ended (the
batcher is busy, but its items come one at a time) first waits ``linger_s`` for company.
Each batch's size is observed in ``escalation_batch_size`` (stage ``group``, the batcher's
``name``), so an operator sees how much company the requests find.

``handle`` returns one result per item, in order; a result that is an exception is raised to
that item's request alone. An exception ``handle`` raises is raised to every request of the
batch. The write does not belong to any request: a request that is cancelled (its client went
away) leaves its item in the batch, as a statement already sent would have been.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from shared.observability import metrics

Item = TypeVar("Item")
Result = TypeVar("Result")
Handle = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class Batcher(Generic[Item, Result]):
    def __init__(
        self, handle: Handle[Item, Result], *, name: str, max_batch: int, linger_s: float = 0.0
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if linger_s < 0:
            raise ValueError("linger_s must not be negative")
        self._handle = handle
        self._sizes = metrics.BATCH_SIZE.labels("group", name)
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._wrote_at = -1.0
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: Item) -> Result:
        """``item`` written with the others waiting; its result, or its exception."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="batcher")
        # A request that is cancelled cancels only its own future, not its item's write.
        return await future

    async def aclose(self) -> None:
        """Take no more items; return once every waiting one is written."""
        self._closed = True
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            if self._linger_s and loop.time() - self._wrote_at < self._linger_s:
                # Busy: the last write was a moment ago. Let this batch gather for a moment
                # rather than write each item as it comes.
                await asyncio.sleep(self._linger_s)
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._answer(batch)
                self._wrote_at = loop.time()
        except asyncio.CancelledError:
            # The loop is going down under us: nobody is left waiting for an answer.
            for _, future in self._waiting:
                future.cancel()
            raise
        finally:
            self._writer = None

    async def _answer(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self._sizes.observe(len(batch))
        try:
            results = await self._handle([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its request was cancelled: nobody waits for the answer
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
                # Retrieved here too, so a request that has gone away leaves no warning.
                future.add_done_callback(_retrieve)
            else:
                future.set_result(result)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
