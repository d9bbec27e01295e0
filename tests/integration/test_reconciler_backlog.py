"""The reconciler asks the broker before it re-drives: an issue whose event may still be queued
for its consumer waits, one whose event the broker lost (or the consumer took) goes again."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka.backlog import GroupBacklog
from shared.kafka.topics import CLASSIFIER, TopicNames, ensure_topics, group_id
from shared.reconciler import reconcile_once
from shared.settings import KafkaSettings, ReconcilerSettings
from tests.support.broker import kafka
from tests.support.factories import scalar, stuck_in_received

SETTINGS = ReconcilerSettings(stuck_after_s=60)


async def _queue_behind(settings: KafkaSettings, key: str) -> TopicPartition:
    """A record keyed ``key`` on ``issues.received`` that the classifier's group has not taken:
    where it landed."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            TopicNames(settings.topic_prefix)("issues.received"), b"{}", key=key.encode()
        )
    finally:
        await producer.stop()
    return TopicPartition(sent.topic, sent.partition)


async def _take(settings: KafkaSettings, tp: TopicPartition, offset: int) -> None:
    """The classifier's group commits ``offset`` on ``tp``, as once it has worked its way there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id(settings, CLASSIFIER),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def test_an_issue_whose_event_is_still_queued_waits_until_its_consumer_is_past_it(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    uows, issue_id = await stuck_in_received(engine, database_url)
    settings = kafka(bootstrap_servers, topic_prefix)
    tp = await _queue_behind(settings, str(issue_id))
    backlog = GroupBacklog(settings)
    try:
        await _take(settings, tp, 0)  # the group has started on the partition, not got to it
        assert await reconcile_once(uows, SETTINGS, backlog) == 0
        assert await scalar(engine, "SELECT count(*) FROM outbox_pending") == 0

        await _take(settings, tp, 1)
        assert await reconcile_once(uows, SETTINGS, backlog) == 1
    finally:
        await backlog.close()
    assert await scalar(engine, "SELECT count(*) FROM outbox_pending") == 1


async def test_an_issue_queued_for_longer_than_the_wait_is_re_driven_anyway(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """The broker's answer is not trusted for ever: a partition it muddled on a restart can
    report a group behind an event that it will never hand over."""
    uows, issue_id = await stuck_in_received(engine, database_url)  # ten minutes ago
    settings = kafka(bootstrap_servers, topic_prefix)
    tp = await _queue_behind(settings, str(issue_id))
    backlog = GroupBacklog(settings)
    try:
        await _take(settings, tp, 0)
        waits = ReconcilerSettings(stuck_after_s=60, queued_wait_s=560)
        assert await reconcile_once(uows, waits, backlog) == 0
        waited = ReconcilerSettings(stuck_after_s=60, queued_wait_s=520)
        assert await reconcile_once(uows, waited, backlog) == 1
    finally:
        await backlog.close()
    assert await scalar(engine, "SELECT count(*) FROM outbox_pending") == 1


async def test_an_issue_is_re_driven_when_its_consumer_has_committed_nothing_there(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """As after a memory broker's restart, which forgets the groups' offsets with the log: a
    consumer whose position lies beyond the new log's end would wait there for good."""
    uows, issue_id = await stuck_in_received(engine, database_url)
    settings = kafka(bootstrap_servers, topic_prefix)
    await _queue_behind(settings, str(issue_id))
    backlog = GroupBacklog(settings)
    try:
        assert await reconcile_once(uows, SETTINGS, backlog) == 1
    finally:
        await backlog.close()


async def test_an_issue_is_re_driven_when_nothing_was_published_there_since(
    bootstrap_servers: str, topic_prefix: str
) -> None:
    """Its event was lost: the partition holds nothing as late as its status change."""
    issue_id = uuid.uuid4()
    settings = kafka(bootstrap_servers, topic_prefix)
    tp = await _queue_behind(settings, str(issue_id))
    await _take(settings, tp, 0)
    backlog = GroupBacklog(settings)
    since = {str(issue_id): datetime.now(UTC) + timedelta(minutes=1)}
    try:
        assert await backlog.queued("issues.received", CLASSIFIER, since) == set()
        stuck_since = {str(issue_id): datetime.now(UTC) - timedelta(minutes=10)}
        assert await backlog.queued("issues.received", CLASSIFIER, stuck_since) == {str(issue_id)}
    finally:
        await backlog.close()


async def test_without_an_answer_from_the_broker_the_reconciler_re_drives_as_before(
    engine: AsyncEngine, database_url: str
) -> None:
    uows, issue_id = await stuck_in_received(engine, database_url)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{closed.getsockname()[1]}"
    backlog = GroupBacklog(KafkaSettings(bootstrap_servers=nobody, request_timeout_ms=1000))
    since = {str(issue_id): datetime.now(UTC)}
    try:
        assert await backlog.queued("issues.received", CLASSIFIER, since) is None
        assert await reconcile_once(uows, SETTINGS, backlog) == 1
    finally:
        await backlog.close()
