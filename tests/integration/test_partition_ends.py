"""Where a partition ends, as our readers see it, when its last batch holds several records.

The embedded broker answers an offset query for a partition's end with its last batch's first
offset plus one; a fetch reports the end right. These tests end a topic with such a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import create_session_factory
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope, encode
from shared.kafka.consumer import ConsumerLoop, ConsumerSpec
from shared.kafka.inspect import list_dead_letters, replay_dead_letters
from shared.kafka.topics import TopicNames, ensure_topics
from shared.settings import ConsumerSettings, KafkaSettings
from tests.support.broker import consumed, kafka, one_batch
from tests.support.factories import eventually, seed_partner, updated_event

BATCH = 6


@asynccontextmanager
async def _probe(
    engine: AsyncEngine, settings: KafkaSettings, consumer_settings: ConsumerSettings
) -> AsyncIterator[tuple[ConsumerLoop, list[str]]]:
    """A consumer loop on ``issues.updated`` running for the block, and the ids of the events it
    has handled, in order."""
    handled: list[str] = []

    async def handler(uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        handled.append(envelope.id)

    loop = ConsumerLoop(
        ConsumerSpec("probe", "issues.updated", handler),
        uow_factory=UnitOfWorkFactory(create_session_factory(engine)),
        kafka=settings,
        settings=consumer_settings,
    )
    stop = asyncio.Event()
    consuming = asyncio.create_task(loop.run(stop))
    try:
        yield loop, handled
    finally:
        stop.set()
        await consuming


@pytest.mark.single_db
async def test_dlq_list_and_replay_see_every_record_of_the_batch_the_dlq_ends_with(
    bootstrap_servers: str, topic_prefix: str
) -> None:
    settings = kafka(bootstrap_servers, topic_prefix)
    await ensure_topics(settings)
    dlq = TopicNames(topic_prefix).dlq("issues.updated")
    await one_batch(settings, dlq, [(f"parked {i}".encode(), []) for i in range(BATCH)])

    listed = await list_dead_letters(settings, "issues.updated")
    assert [d.record.offset for d in listed] == list(range(BATCH))
    replay = await replay_dead_letters(settings, "issues.updated")
    assert [r.offset for r in replay.replayed] == list(range(BATCH))
    assert all(d.replayed for d in await list_dead_letters(settings, "issues.updated"))
    assert (await replay_dead_letters(settings, "issues.updated")).replayed == []


async def test_an_idle_consumer_does_not_read_its_topic_again_after_a_batch_of_several(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    settings = kafka(bootstrap_servers, topic_prefix)
    await ensure_topics(settings)
    events = [encode(updated_event(partner.id), service="test")[1:] for _ in range(BATCH)]
    await one_batch(settings, TopicNames(topic_prefix)("issues.updated"), events)

    # Idle this long and the loop asks the broker where its partitions end.
    consumer_settings = ConsumerSettings(stall_after_s=0.2)
    async with _probe(engine, settings, consumer_settings) as (loop, handled):
        await eventually(lambda: consumed(loop, BATCH), timeout=30)
        await asyncio.sleep(10 * consumer_settings.stall_after_s)
    assert len(handled) == BATCH
    # Read again, each would count (as a duplicate the inbox turned away).
    assert loop.processed == BATCH


async def test_a_busy_consumer_reads_again_a_partition_that_ends_before_its_position(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """As after a memory broker's restart: the log of a partition is shorter than what the
    consumer had read. The embedded broker answers a fetch past the end with nothing, so the
    consumer must notice by itself, also while its other partition keeps it busy."""
    partner = await seed_partner(database_url)
    settings = kafka(bootstrap_servers, topic_prefix)
    await ensure_topics(settings)
    topic = TopicNames(topic_prefix)("issues.updated")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()

    async def publish(partition: int) -> str:
        event_id, value, headers = encode(updated_event(partner.id), service="test")
        await producer.send_and_wait(topic, value, partition=partition, headers=headers)
        return event_id

    async def keep_busy() -> None:
        while True:  # more often than stall_after_s: the consumer is never idle that long
            await publish(1)
            await asyncio.sleep(0.05)

    busy: asyncio.Task[None] | None = None
    try:
        async with _probe(engine, settings, ConsumerSettings(stall_after_s=0.3)) as (
            loop,
            handled,
        ):
            first = [await publish(0), await publish(1)]
            await eventually(lambda: _handled(handled, first), timeout=30)
            assert loop._consumer is not None
            loop._consumer.seek(TopicPartition(topic, 0), 1_000)  # past the log's end
            busy = asyncio.create_task(keep_busy())
            below = await publish(0)  # lands at offset 1, below the consumer's position
            await eventually(lambda: _handled(handled, [below]), timeout=20)
            assert not busy.done()
    finally:
        if busy is not None:
            busy.cancel()
        await producer.stop()


async def _handled(handled: list[str], ids: list[str]) -> bool:
    return set(ids) <= set(handled)


async def test_an_offset_past_the_end_a_fetch_reported_is_not_committed(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """An offset from a log the broker has lost since: committed, it would start the group past
    the new log's first records after the next rebalance."""
    partner = await seed_partner(database_url)
    settings = kafka(bootstrap_servers, topic_prefix)
    await ensure_topics(settings)
    topic = TopicNames(topic_prefix)("issues.updated")
    tp = TopicPartition(topic, 0)
    await one_batch(settings, topic, [encode(updated_event(partner.id), service="test")[1:]])
    async with _probe(engine, settings, ConsumerSettings()) as (loop, _):
        await eventually(lambda: consumed(loop, 1), timeout=30)
        await eventually(lambda: _committed(settings, loop.group_id, tp, 1), timeout=30)
        loop._pending[tp] = 1_000  # read from a log longer than the one the fetch reported
        await loop.commit_pending()
        assert await _committed(settings, loop.group_id, tp, 1)


async def _committed(settings: KafkaSettings, group: str, tp: TopicPartition, offset: int) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=[tp])
    finally:
        await admin.close()
    found = committed.get(tp)
    return found is not None and found.offset == offset
