"""The fair pool's queue: connections go to waiters in the order they began to wait, a waiter
that gives up is passed over, and nothing handed over is ever lost."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Empty

from shared.db.fair_pool import FairQueue


async def _get(queue: FairQueue[str], timeout: float | None = None) -> str:
    return await greenlet_spawn(queue.get, True, timeout)


async def test_an_idle_item_is_taken_at_once_and_a_given_back_one_goes_to_the_first_waiter() -> (
    None
):
    queue: FairQueue[str] = FairQueue(2)
    queue.put_nowait("a")
    assert await _get(queue) == "a"
    first = asyncio.create_task(_get(queue))
    second = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue.put("b")
    queue.put("c")
    # Given back before either waiter ran, and still each goes to its own waiter in turn.
    assert queue.empty()
    assert (await first, await second) == ("b", "c")


async def test_a_wait_that_times_out_is_empty_and_leaves_no_waiter_behind() -> None:
    queue: FairQueue[str] = FairQueue(1)
    with pytest.raises(Empty):
        await _get(queue, timeout=0.01)
    queue.put_nowait("a")  # kept for the next taker, not handed to the wait that ended
    assert queue.qsize() == 1
    assert queue.get(block=False) == "a"


async def test_an_item_handed_to_a_waiter_that_is_cancelled_goes_to_the_next() -> None:
    queue: FairQueue[str] = FairQueue(1)
    gone = asyncio.create_task(_get(queue))
    next_in_line = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue.put_nowait("a")  # handed to the first waiter…
    gone.cancel()  # …which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await next_in_line == "a"


async def test_a_cancelled_waiter_is_passed_over() -> None:
    queue: FairQueue[str] = FairQueue(1)
    gone = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    waiting = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue.put_nowait("a")
    assert await waiting == "a"
    assert queue.empty()
