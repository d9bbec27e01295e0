"""Finding a broker (KAFKA_BOOTSTRAP_SERVERS, testcontainers Kafka, else embedded Tansu),
settings for a test's own consumers, and reading a topic back in a test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaTimeoutError

from shared.events.envelope import decode
from shared.kafka.consumer import ConsumerLoop
from shared.kafka.embedded import EmbeddedBroker
from shared.settings import KafkaSettings
from tests.support.docker import docker_available


def kafka(bootstrap_servers: str, prefix: str) -> KafkaSettings:
    """Two partitions per topic and group timeouts short enough for a test."""
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=prefix,
        partitions=2,
        session_timeout_ms=3000,
        heartbeat_interval_ms=300,
        rebalance_timeout_ms=3000,
    )


async def consumed(loop: ConsumerLoop, n: int) -> bool:
    """Whether ``loop`` has handled ``n`` records (duplicates count), for ``eventually``."""
    return loop.processed >= n


@asynccontextmanager
async def any_broker(log_dir: Path) -> AsyncIterator[str]:
    """Yield bootstrap servers of the first broker found, in the documented order."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield container.get_bootstrap_server()
        return
    async with EmbeddedBroker(log_path=log_dir / "broker.log") as broker:
        yield broker.bootstrap_servers


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int | None = None,
    timeout_s: float = 20.0,
    idle_s: float = 1.5,
) -> list[ConsumerRecord]:
    """``topic``'s records from the beginning: until ``expected`` have arrived (or ``timeout_s``
    has passed), or, without ``expected``, until none has arrived for ``idle_s``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        if expected is None:
            while batch := await consumer.getmany(timeout_ms=int(idle_s * 1000)):
                records.extend(record for part in batch.values() for record in part)
            return records
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records.extend(record for part in batch.values() for record in part)
        return records
    finally:
        await consumer.stop()


Record = tuple[bytes, list[tuple[str, bytes]]]


async def one_batch(settings: KafkaSettings, topic: str, records: list[Record]) -> None:
    """``records`` (value, headers) to partition 0 of ``topic`` in one produce request, as one
    record batch: the embedded broker's offset query then answers short of the partition's end
    (see :mod:`shared.kafka.offsets`)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=200)
    await producer.start()
    try:
        sent = [await producer.send(topic, v, key=b"k", partition=0, headers=h) for v, h in records]
        offsets = [(await s).offset for s in sent]
    finally:
        await producer.stop()
    assert offsets == list(range(offsets[0], offsets[0] + len(records)))


def refuse_batches(
    monkeypatch: pytest.MonkeyPatch,
    producer: AIOKafkaProducer,
    refused: Callable[[str, int], bool] = lambda topic, partition: True,
) -> None:
    """Until ``monkeypatch.undo()``, the broker answers the record batches ``producer`` is
    handed for a (topic, partition) that ``refused`` picks with a timeout; the rest go out."""
    send_batch = producer.send_batch

    async def refusing(batch: Any, topic: str, *, partition: int) -> asyncio.Future[object]:
        if refused(topic, partition):
            failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            failed.set_exception(KafkaTimeoutError())
            return failed
        accepted: asyncio.Future[object] = await send_batch(batch, topic, partition=partition)
        return accepted

    monkeypatch.setattr(producer, "send_batch", refusing)


def event_ids(records: Iterable[ConsumerRecord]) -> list[str]:
    """The CloudEvents ids of ``records``, in their order."""
    return [decode(record.value, list(record.headers)).id for record in records]
