"""The fair pool's queue: a connection given back may be taken by whoever asks at once, but
only while no waiter has waited its patience; otherwise it goes to the longest waiter. A waiter
that gives up is passed over, and nothing handed over is ever lost."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Empty

from shared.db import fair_pool
from shared.db.fair_pool import FairQueue


async def _get(queue: FairQueue[str], timeout: float | None = None) -> str:
    return await greenlet_spawn(queue.get, True, timeout)


async def _waiting(queue: FairQueue[str]) -> asyncio.Task[str]:
    task = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)  # now in line
    return task


async def test_an_idle_item_is_taken_at_once() -> None:
    queue: FairQueue[str] = FairQueue(1)
    queue.put_nowait("a")
    assert await _get(queue) == "a"
    assert queue.empty()


async def test_one_who_asks_again_at_once_goes_on_while_the_waiter_is_patient() -> None:
    queue: FairQueue[str] = FairQueue(1)
    waiter = await _waiting(queue)
    queue.put_nowait("a")
    assert await _get(queue) == "a"  # given back and asked for again before the loop turned
    assert not waiter.done()
    queue.put_nowait("a")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert waiter.done()  # nobody asked at once: the waiter has it at the loop's next turn
    assert await waiter == "a"


async def test_a_waiter_that_has_waited_its_patience_is_handed_the_item_whoever_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fair_pool, "PATIENCE_S", 0.05)
    queue: FairQueue[str] = FairQueue(1)
    waiter = await _waiting(queue)
    await asyncio.sleep(0.06)
    queue.put_nowait("a")
    asking = asyncio.create_task(_get(queue, timeout=0.05))
    assert await waiter == "a"
    with pytest.raises(Empty):
        await asking


async def test_waiters_are_served_in_the_order_they_began_to_wait() -> None:
    queue: FairQueue[str] = FairQueue(2)
    first = await _waiting(queue)
    second = await _waiting(queue)
    queue.put_nowait("b")
    queue.put_nowait("c")
    assert (await first, await second) == ("b", "c")


async def test_a_wait_that_times_out_is_empty_and_leaves_no_waiter_behind() -> None:
    queue: FairQueue[str] = FairQueue(1)
    with pytest.raises(Empty):
        await _get(queue, timeout=0.01)
    queue.put_nowait("a")  # kept for the next taker, not handed to the wait that ended
    await asyncio.sleep(0)
    assert queue.qsize() == 1
    assert queue.get(block=False) == "a"


async def test_an_item_handed_to_a_waiter_that_is_cancelled_goes_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fair_pool, "PATIENCE_S", 0.0)  # handed over straight away
    queue: FairQueue[str] = FairQueue(1)
    gone = await _waiting(queue)
    next_in_line = await _waiting(queue)
    queue.put_nowait("a")  # handed to the first waiter…
    gone.cancel()  # …which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await next_in_line == "a"


async def test_a_cancelled_waiter_is_passed_over() -> None:
    queue: FairQueue[str] = FairQueue(1)
    gone = await _waiting(queue)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    waiting = await _waiting(queue)
    queue.put_nowait("a")
    assert await waiting == "a"
    assert queue.empty()
