"""A CancelledError that escapes a library while nobody is stopping the worker must not end it.

Seen under the fault suite: when the broker dropped a fetch's connection, aiokafka let a
CancelledError out of the consumer client; the consumer loop ended as if shut down and the
notifier never read ``issues.classified`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from services import runtime
from shared.kafka.consumer import ConsumerLoop, ConsumerSpec, _TopologyLost
from shared.settings import ConsumerSettings, KafkaSettings


async def _stray_cancel() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    never.cancel()
    await never  # raises CancelledError without this task being cancelled


async def _nothing(*_: object) -> None:
    return None


def _loop() -> ConsumerLoop:
    """A consumer loop whose handler and database are never reached."""
    return ConsumerLoop(
        ConsumerSpec(name="t", topic="issues.received", handler=_nothing),
        uow_factory=None,  # type: ignore[arg-type]  # never reached
        kafka=KafkaSettings(),
        settings=ConsumerSettings(),
    )


async def test_a_supervised_worker_ended_by_a_stray_cancellation_is_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "RESTART_PAUSE_S", 0.01)
    runs = 0
    stop = asyncio.Event()

    async def worker(_stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            await _stray_cancel()

    await asyncio.wait_for(runtime._supervised("w", worker, stop), timeout=5)
    assert runs == 2


async def test_a_supervised_worker_cancelled_from_outside_stays_cancelled() -> None:
    started = asyncio.Event()

    async def worker(_stop: asyncio.Event) -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(runtime._supervised("w", worker, asyncio.Event()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_consumer_client_ended_by_a_stray_cancellation_counts_as_a_lost_broker() -> None:
    """Its parts are stopped: the client's own way out may have been cut short by the same
    stray cancellation, and a DLQ producer never stopped is reported unclosed by the collector
    (seen on `make run` when the broker went away: one per consumer)."""
    loop = _loop()
    consumer, dlq = _Part(), _Part()
    with pytest.raises(_TopologyLost, match="cancelled from inside"):
        await loop._watched(asyncio.create_task(_stray_cancel()), consumer, dlq)
    assert (consumer.stopped, dlq.stopped) == (True, True)


class _Part:
    """Stands in for the client's AIOKafkaConsumer or its DLQ producer: whether it was
    stopped."""

    stopped = False

    async def stop(self) -> None:
        self.stopped = True


async def _deaf_to_cancellation(released: asyncio.Event) -> None:
    """A client task that does not end when cancelled (as aiokafka's, waiting where no
    cancellation reaches), until ``released``."""
    while not released.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await released.wait()


async def _ends_when_cancelled(released: asyncio.Event) -> None:
    await released.wait()


@pytest.mark.parametrize(
    ("client", "stopped"), [(_deaf_to_cancellation, True), (_ends_when_cancelled, False)]
)
async def test_a_hung_client_that_does_not_end_when_told_has_its_consumer_and_producer_stopped(
    monkeypatch: pytest.MonkeyPatch,
    client: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    stopped: bool,
) -> None:
    """Its group member would otherwise outlive it and keep partitions nobody reads, and its
    producer's connections stay open; a client that ends stops both itself, on its way out."""

    loop = _loop()
    monkeypatch.setattr(ConsumerLoop, "_hang_after_s", 0.0)
    monkeypatch.setattr(ConsumerLoop, "_abandon_after_s", 0.2)
    consumer, dlq, released = _Part(), _Part(), asyncio.Event()
    task = asyncio.create_task(client(released))
    try:
        with pytest.raises(_TopologyLost, match="no progress"):
            await loop._watched(task, consumer, dlq)
    finally:
        released.set()
        await asyncio.wait({task}, timeout=5)
    assert (consumer.stopped, dlq.stopped) == (stopped, stopped)


async def test_a_client_whose_consumer_cannot_start_closes_it_and_its_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The DLQ producer is made with the consumer, before either starts; one the client never
    started is closed all the same, not left to the collector (which reports it unclosed).
    The consumer is stopped too: a start that failed part way leaves its connections open,
    and its group coordinator running if it got that far."""

    class _Unreachable(_Part):
        async def start(self) -> None:
            raise OSError("the broker does not answer")

    monkeypatch.setattr("shared.kafka.consumer.ensure_topics", _nothing)
    loop = _loop()
    consumer, dlq = _Unreachable(), _Part()
    with pytest.raises(OSError, match="does not answer"):
        await loop._run_client(consumer, dlq, asyncio.Event())
    assert (consumer.stopped, dlq.stopped) == (True, True)


async def test_a_client_whose_consumer_fails_to_stop_still_stops_its_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka's consumer can let a stray CancelledError out of its stop when the broker has
    gone; the DLQ producer is stopped all the same, and the error still ends the client."""

    class _Started(_Part):
        async def start(self) -> None:
            return None

    class _FailsToStop(_Started):
        async def stop(self) -> None:
            await _stray_cancel()

    monkeypatch.setattr("shared.kafka.consumer.ensure_topics", _nothing)
    loop = _loop()
    dlq = _Started()
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(asyncio.CancelledError):
        await loop._run_client(_FailsToStop(), dlq, stop)
    assert dlq.stopped
