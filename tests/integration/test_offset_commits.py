"""A consumer's offset commits: at most one per interval while records keep coming, and the
rest at once when the partitions run dry; against a real broker and database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope
from shared.kafka.consumer import ConsumerLoop, ConsumerSpec
from shared.settings import ConsumerSettings, KafkaSettings
from tests.support.broker import consumed, kafka
from tests.support.factories import eventually, queued_updates, relay_all

EVENTS = 12


async def _published(
    engine: AsyncEngine, database_url: str, settings: KafkaSettings
) -> UnitOfWorkFactory:
    """``EVENTS`` events on ``issues.updated`` before any consumer starts, so that it reads
    them back to back, a batch of one each."""
    uows, _, _ = await queued_updates(engine, database_url, EVENTS)
    await relay_all(engine, uows, settings, EVENTS)
    return uows


async def _committed_to_end(settings: KafkaSettings, group_id: str) -> bool:
    """Whether the group's committed offsets on ``issues.updated``, summed over its
    partitions, cover all ``EVENTS``."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    await reader.start()
    try:
        topic = f"{settings.topic_prefix}issues.updated"
        partitions = range(settings.partitions)
        committed = [await reader.committed(TopicPartition(topic, p)) or 0 for p in partitions]
    finally:
        await reader.stop()
    return sum(committed) == EVENTS


@pytest.mark.parametrize(("interval_ms", "most"), [(60_000, EVENTS // 3), (0, None)])
async def test_offsets_are_committed_once_per_interval_while_records_come_and_at_once_when_dry(
    engine: AsyncEngine,
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    interval_ms: int,
    most: int | None,
) -> None:
    settings = kafka(bootstrap_servers, topic_prefix)
    uows = await _published(engine, database_url, settings)
    commits: list[dict[TopicPartition, int]] = []
    real_commit = AIOKafkaConsumer.commit

    async def counted(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        commits.append(dict(offsets or {}))
        await real_commit(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counted)

    async def handler(_uow: UnitOfWork, _envelope: Envelope, _prepared: object) -> None:
        return None

    loop = ConsumerLoop(
        ConsumerSpec("probe", "issues.updated", handler),
        uow_factory=uows,
        kafka=settings,
        settings=ConsumerSettings(
            batch_size=1, batch_linger_ms=0, commit_interval_ms=interval_ms, poll_timeout_ms=100
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(lambda: consumed(loop, EVENTS), timeout=30)
        # Run dry, the consumer commits what it handled without waiting out the interval.
        await eventually(lambda: _committed_to_end(settings, loop.group_id), timeout=10)
    finally:
        stop.set()
        await task
    if most is None:
        assert len(commits) >= EVENTS, "with no interval, every batch is committed"
    else:
        assert 1 <= len(commits) <= most, f"{len(commits)} commits for {EVENTS} batches"
