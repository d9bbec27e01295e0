"""The inbox is written before an event is handled: one statement per batch, and a copy that
another consumer is handling right now waits for that consumer's transaction."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import InboxRecord
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope
from shared.kafka import inbox
from shared.kafka.consumer import ConsumerLoop, ConsumerSpec
from shared.settings import ConsumerSettings, KafkaSettings
from tests.support.factories import eventually


@pytest.fixture
def uows(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_session_factory(engine))


async def test_only_ids_the_inbox_did_not_hold_are_taken_and_a_rollback_keeps_none(
    uows: UnitOfWorkFactory,
) -> None:
    async with uows() as uow:
        assert await inbox.take(uow.session, "classifier", {"e1", "e2"}) == {"e1", "e2"}
        await uow.commit()
    async with uows() as uow:
        assert await inbox.take(uow.session, "classifier", {"e2", "e3"}) == {"e3"}
        # Another consumer's inbox is its own.
        assert await inbox.take(uow.session, "notifier", {"e2"}) == {"e2"}
        # Not committed: rolled back at the end of the unit of work.
    async with uows() as uow:
        assert await inbox.held(uow.session, "classifier", {"e1", "e2", "e3"}) == {"e1", "e2"}
        assert await inbox.held(uow.session, "notifier", {"e2"}) == set()
        assert await inbox.take(uow.session, "classifier", set()) == set()


@pytest.mark.parametrize("first_commits", [True, False], ids=["commits", "rolls-back"])
async def test_a_copy_being_handled_elsewhere_waits_for_that_transaction(
    uows: UnitOfWorkFactory, first_commits: bool
) -> None:
    async with uows() as first:
        assert await inbox.take(first.session, "notifier", {"e1"}) == {"e1"}

        async def second() -> set[str]:
            async with uows() as uow:
                taken = await inbox.take(uow.session, "notifier", {"e1", "e2"})
                await uow.commit()
                return taken

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.5)
        assert not racing.done(), "the second transaction did not wait for the first"
        if first_commits:
            await first.commit()
    assert await asyncio.wait_for(racing, timeout=30) == ({"e2"} if first_commits else {"e1", "e2"})


async def _records(uows: UnitOfWorkFactory, *rows: tuple[str, str, timedelta]) -> None:
    """Inbox records (consumer, event id, how long ago handled)."""
    now = utcnow()
    async with uows() as uow:
        uow.session.add_all(
            InboxRecord(consumer=c, event_id=e, processed_at=now - ago) for c, e, ago in rows
        )
        await uow.commit()


async def _held(uows: UnitOfWorkFactory, consumer: str, *ids: str) -> set[str]:
    async with uows() as uow:
        return await inbox.held(uow.session, consumer, set(ids))


LONG_AGO = timedelta(days=20)


async def test_old_records_of_the_named_consumers_are_forgotten_a_bounded_number_at_a_time(
    uows: UnitOfWorkFactory,
) -> None:
    await _records(
        uows,
        *(("classifier", f"old{i}", LONG_AGO) for i in range(3)),
        ("classifier", "recent", timedelta(0)),
        ("notifier", "old", LONG_AGO),
    )
    before = utcnow() - timedelta(days=14)
    async with uows() as uow:
        gone = [
            await inbox.forget(uow.session, ["classifier"], before=before, limit=2)
            for _ in range(3)
        ]
        await uow.commit()
    assert gone == [2, 1, 0]
    assert await _held(uows, "classifier", "old0", "old1", "old2", "recent") == {"recent"}
    assert await _held(uows, "notifier", "old") == {"old"}


async def test_a_consumer_loop_forgets_its_own_old_records_and_parked_markers(
    uows: UnitOfWorkFactory, bootstrap_servers: str, topic_prefix: str
) -> None:
    await _records(
        uows,
        ("probe", "old", LONG_AGO),
        ("probe.dlq", "old-marker", LONG_AGO),
        ("probe", "recent", timedelta(hours=1)),
        ("other", "old", LONG_AGO),
    )

    async def handler(uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        raise AssertionError("nothing is published to the topic")

    loop = ConsumerLoop(
        ConsumerSpec("probe", "issues.updated", handler),
        uow_factory=uows,
        kafka=KafkaSettings(bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix),
        settings=ConsumerSettings(inbox_retention_h=14 * 24),
    )
    stop = asyncio.Event()
    consuming = asyncio.create_task(loop.run(stop))

    async def swept() -> bool:
        left = await _held(uows, "probe", "old") | await _held(uows, "probe.dlq", "old-marker")
        return not left

    try:
        await eventually(swept, timeout=30)
    finally:
        stop.set()
        await consuming
    assert await _held(uows, "probe", "recent") == {"recent"}
    assert await _held(uows, "other", "old") == {"old"}
