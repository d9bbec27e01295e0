"""Group commit: what arrives while a batch is written goes in the next one, each request gets
its own answer, and nothing submitted is dropped."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from shared.batching import Batcher


class Writer:
    """A ``handle`` that records its batches and holds each until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: Exception | None = None

    async def handle(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_a_lone_item_is_written_at_once_and_answered() -> None:
    writer = Writer()
    batcher = Batcher(writer.handle, name="test", max_batch=8)
    assert await batcher.submit(2) == 20
    assert writer.batches == [[2]]


async def test_items_arriving_while_a_batch_is_written_go_together_in_the_next() -> None:
    writer = Writer()
    writer.release.clear()
    batcher = Batcher(writer.handle, name="test", max_batch=3)
    first = asyncio.create_task(batcher.submit(0))
    while not writer.batches:  # the first batch is being written
        await asyncio.sleep(0)
    assert writer.batches == [[0]]
    later = [asyncio.create_task(batcher.submit(i)) for i in (2, 4, 6, 8, 10)]
    await asyncio.sleep(0)
    writer.release.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [20, 40, 60, 80, 100]
    # At most max_batch per batch, in the order they came.
    assert writer.batches == [[0], [2, 4, 6], [8, 10]]


async def test_each_batch_size_is_observed_under_the_batchers_name() -> None:
    writer = Writer()
    writer.release.clear()
    batcher = Batcher(writer.handle, name="sized", max_batch=3)
    first = asyncio.create_task(batcher.submit(0))
    while not writer.batches:
        await asyncio.sleep(0)
    later = [asyncio.create_task(batcher.submit(i)) for i in (2, 4, 6, 8)]
    await asyncio.sleep(0)
    before = {name: _sized(name) for name in ("count", "sum", "bucket")}
    writer.release.set()
    await asyncio.gather(first, *later)
    # The first batch was observed as it began; then [2, 4, 6] and [8].
    assert _sized("count") - before["count"] == 2
    assert _sized("sum") - before["sum"] == 4
    assert _sized("bucket", le="2.0") - before["bucket"] == 1  # [8]; [2, 4, 6] is over 2


def _sized(sample: str, le: str = "2.0") -> float:
    labels = {"stage": "group", "name": "sized"} | ({"le": le} if sample == "bucket" else {})
    return REGISTRY.get_sample_value(f"escalation_batch_size_{sample}", labels) or 0.0


async def test_a_busy_batcher_lets_the_next_batch_gather_and_an_idle_one_does_not() -> None:
    writer = Writer()
    batcher = Batcher(writer.handle, name="test", max_batch=8, linger_s=1.0)
    first = asyncio.create_task(batcher.submit(0))
    await _turns()
    assert writer.batches == [[0]], "idle: written at once"
    assert await first == 0
    # Busy (the last write was a moment ago): the next item waits for company.
    later = [asyncio.create_task(batcher.submit(2))]
    await _turns()
    assert writer.batches == [[0]]
    later.append(asyncio.create_task(batcher.submit(4)))
    assert await asyncio.gather(*later) == [20, 40]
    assert writer.batches == [[0], [2, 4]]


async def _turns(n: int = 10) -> None:
    """Let the event loop go round ``n`` times, no timer firing."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_an_item_result_that_is_an_exception_is_raised_to_that_request_alone() -> None:
    writer = Writer()
    batcher = Batcher(writer.handle, name="test", max_batch=8)
    results = await asyncio.gather(
        batcher.submit(2), batcher.submit(3), batcher.submit(4), return_exceptions=True
    )
    assert results[0] == 20
    assert results[2] == 40
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "odd 3"
    assert writer.batches == [[2, 3, 4]]


async def test_a_failed_batch_fails_its_requests_and_the_next_batch_is_written() -> None:
    writer = Writer()
    writer.fail_with = ConnectionError("database away")
    batcher = Batcher(writer.handle, name="test", max_batch=8)
    results = await asyncio.gather(batcher.submit(2), batcher.submit(4), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    writer.fail_with = None
    assert await batcher.submit(6) == 60


async def test_a_wrong_number_of_results_fails_the_batch_instead_of_misanswering() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = Batcher(short, name="test", max_batch=8)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_cancelled_request_leaves_its_item_in_the_batch_without_a_warning() -> None:
    writer = Writer()
    writer.release.clear()
    batcher = Batcher(writer.handle, name="test", max_batch=8)
    gone = asyncio.create_task(batcher.submit(3))  # answered with an exception, to nobody
    stays = asyncio.create_task(batcher.submit(4))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        writer.release.set()
        assert await stays == 40
        await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert writer.batches == [[3, 4]]
    assert not [c for c in reported if "never retrieved" in str(c.get("message"))]


async def test_closing_waits_for_what_is_waiting_and_refuses_more() -> None:
    writer = Writer()
    writer.release.clear()
    batcher = Batcher(writer.handle, name="test", max_batch=1)
    waiting = [asyncio.create_task(batcher.submit(i)) for i in (2, 4)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(batcher.aclose())
    await asyncio.sleep(0)
    assert not closing.done()
    writer.release.set()
    await closing
    assert [t.result() for t in waiting] == [20, 40]
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.submit(6)


def test_a_batch_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(Writer().handle, name="test", max_batch=0)
    with pytest.raises(ValueError, match="negative"):
        Batcher(Writer().handle, name="test", max_batch=1, linger_s=-1)
