"""Outbox relay, inbox idempotency and the reconciler, against a real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import structlog.testing
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.direct import Direct, DirectStatements
from shared.db.engine import create_engine, create_session_factory
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope, encode
from shared.events.models import IssueUpdated
from shared.kafka import outbox
from shared.kafka.consumer import ConsumerLoop, ConsumerSpec
from shared.kafka.outbox import BrokerUnavailable, OutboxRelay, enqueue
from shared.kafka.processing import EventProcessor, Handler
from shared.kafka.producer import create_producer
from shared.kafka.topics import TopicNames, ensure_topics
from shared.reconciler import reconcile_once
from shared.settings import (
    ConsumerSettings,
    DatabaseSettings,
    OutboxSettings,
    ReconcilerSettings,
)
from tests.support.broker import consumed, event_ids, kafka, read_topic, refuse_batches
from tests.support.factories import (
    all_sent,
    eventually,
    outbox_states,
    queued_updates,
    relay_all,
    relay_for,
    rows,
    scalar,
    seed_partner,
    stuck_in_received,
    updated_event,
)


async def test_the_relay_publishes_committed_outbox_rows_once_and_marks_them_sent(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    uows, partner_id, ids = await queued_updates(engine, database_url, 25)
    async with uows() as uow:
        enqueue(uow.session, updated_event(partner_id), service="test")  # rolled back: never sent

    await relay_all(engine, uows, kafka(bootstrap_servers, topic_prefix), 25)
    topic = f"{topic_prefix}issues.updated"
    published = await read_topic(bootstrap_servers, topic, expected=25)
    assert sorted(event_ids(published)) == sorted(ids)


async def test_a_relay_whose_claim_came_back_full_claims_again_without_being_woken(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """Commits that land while a pass is out wake the relay once: a backlog larger than a batch
    is drained pass after pass, not one batch per wake-up (seen on SQLite under load)."""
    uows, _, _ = await queued_updates(engine, database_url, 5)
    relay = OutboxRelay(
        uows,
        Direct(engine),
        kafka=kafka(bootstrap_servers, topic_prefix),
        settings=OutboxSettings(batch_size=2, poll_interval_s=60),
        service="test",
    )
    try:
        passes = [await relay.relay_once() for _ in range(4)]
    finally:
        await relay._close_producer()
    assert passes == [2, 2, 1, 0]  # the last claim was not full: none until woken or polled
    assert await all_sent(engine, 5)


async def test_published_rows_the_relay_cannot_mark_at_once_are_marked_later_not_sent_again(
    engine: AsyncEngine,
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen under overload: the relay published a batch, the database was busy when it came to
    mark it, and the batch went out again once its lease ended."""
    uows, _, ids = await queued_updates(engine, database_url, 5)
    marks_refused = 0

    def busy_at_first(run: Any) -> Any:
        # Marking runs one statement per batch (on PostgreSQL its rows go as arrays).
        async def refusing(self: DirectStatements, build: Any, values: Any) -> Any:
            nonlocal marks_refused
            if build is outbox._published and marks_refused < 2:
                marks_refused += 1
                lost = OSError("connection reset by peer")
                raise DBAPIError(
                    "DELETE FROM outbox_pending", None, lost, connection_invalidated=True
                )
            return await run(self, build, values)

        return refusing

    for method in ("execute", "executemany"):
        monkeypatch.setattr(
            DirectStatements, method, busy_at_first(getattr(DirectStatements, method))
        )
    # Well inside the 30 s lease that would otherwise send the batch again.
    await relay_all(engine, uows, kafka(bootstrap_servers, topic_prefix), 5, timeout=10)
    published = await read_topic(bootstrap_servers, f"{topic_prefix}issues.updated")
    assert marks_refused == 2
    assert sorted(event_ids(published)) == sorted(ids)


async def test_a_row_another_relay_claims_while_a_batch_is_marked_is_left_to_that_relay(
    engine: AsyncEngine, database_url: str
) -> None:
    """A relay's marking waits for a row that another relay, whose claim came once the lease
    ended, holds locked; when that claim commits, the row is left as it made it (leased to it,
    to publish and mark), and the batch's other rows are marked sent."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: other processes' relays claim rows while one marks")
    _, _, ids = await queued_updates(engine, database_url, 3)
    first, middle, last = [
        row_id for (row_id,) in await rows(engine, "SELECT id FROM outbox ORDER BY id")
    ]
    async with engine.connect() as other:
        await other.execute(
            text(
                "UPDATE outbox_pending SET claimed_until = now() + interval '30 seconds', "
                "attempts = attempts + 1 WHERE id = :id"
            ),
            {"id": middle},
        )

        async def marked() -> None:
            async with Direct(engine).statements() as statements:
                await outbox._mark(statements, [first, middle, last])

        marking = asyncio.create_task(marked())

        async def waiting() -> bool:
            return bool(
                await scalar(
                    engine,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM outbox_pending%'",
                )
            )

        await eventually(waiting, timeout=10, message="the marking never waited for the claim")
        assert not marking.done()
        await other.commit()
        await asyncio.wait_for(marking, timeout=10)
    states = await outbox_states(engine)
    assert states[ids[0]] == states[ids[2]] == (True, False, None), "sent"
    assert states[ids[1]] == (False, True, 1), "left to the relay that claimed it"


async def test_rows_whose_batch_the_broker_refused_are_released_and_the_rest_marked(
    engine: AsyncEngine,
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay hands the producer one record batch per partition: the broker refusing one
    partition's batch leaves those rows, and only those, for the next pass. Every record lands
    in the partition the producer's own partitioner gives its key."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    events = _two_per_partition(partner.id)
    async with uows() as uow:
        ids = {enqueue(uow.session, e, service="test"): e.key() for e in events}
        await uow.commit()
    refused = {event_id for event_id, key in ids.items() if _partition(key) == 1}
    relay = relay_for(engine, uows, kafka(bootstrap_servers, topic_prefix))
    producer = await relay._ensure_producer()
    try:
        refuse_batches(monkeypatch, producer, lambda _, partition: partition == 1)
        with pytest.raises(BrokerUnavailable) as refusal:
            await relay.relay_once()
        assert isinstance(refusal.value.__cause__, KafkaTimeoutError)
        states = await outbox_states(engine)
        assert states == {
            event_id: (False, False, 1) if event_id in refused else (True, False, None)
            for event_id in ids
        }, "the refused rows queued again, claimed once and released; the rest sent"
        monkeypatch.undo()
        assert await relay.relay_once() == len(refused)
    finally:
        await relay._close_producer()
    states = await outbox_states(engine)
    assert all(sent and not claimed for sent, claimed, _ in states.values())
    published = await read_topic(bootstrap_servers, f"{topic_prefix}issues.updated", expected=4)
    assert sorted(event_ids(published)) == sorted(ids)
    assert all(r.partition == _partition(r.key.decode()) for r in published)


async def test_a_pass_larger_than_a_record_batch_goes_out_as_several_in_order(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """One issue's 150 events fill several of the producer's batches (16 KiB here, the least
    allowed) in one partition: all are published, in the order they were written."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    issue_id = uuid.uuid4()
    async with uows() as uow:
        ids = [
            enqueue(
                uow.session,
                updated_event(partner.id).model_copy(update={"issue_id": issue_id}),
                service="test",
            )
            for _ in range(150)
        ]
        await uow.commit()
    small = kafka(bootstrap_servers, topic_prefix).model_copy(
        update={"producer_batch_bytes": 16 * 1024}
    )
    relay = relay_for(engine, uows, small)
    producer = await relay._ensure_producer()
    batches: list[int] = []
    send_batch = producer.send_batch

    async def counting(batch: Any, topic: str, *, partition: int) -> asyncio.Future[object]:
        batches.append(partition)
        accepted: asyncio.Future[object] = await send_batch(batch, topic, partition=partition)
        return accepted

    producer.send_batch = counting
    passes = _batch_sizes("relay", "test")
    try:
        assert await relay.relay_once() == 150
    finally:
        await relay._close_producer()
    assert len(batches) > 2
    # One pass of 150 rows, whatever number of record batches it went out in.
    assert _batch_sizes("relay", "test") == (passes[0] + 1, passes[1] + 150)
    assert set(batches) == {_partition(str(issue_id))}
    published = await read_topic(bootstrap_servers, f"{topic_prefix}issues.updated", expected=150)
    in_order = sorted(published, key=lambda r: r.offset)
    assert event_ids(in_order) == ids


def _batch_sizes(stage: str, name: str) -> tuple[float, float]:
    """How many batches ``escalation_batch_size`` has seen for ``stage`` and ``name`` in this
    process, and their items."""
    labels = {"stage": stage, "name": name}
    count, items = (
        REGISTRY.get_sample_value(f"escalation_batch_size_{sample}", labels) or 0.0
        for sample in ("count", "sum")
    )
    return count, items


def _partition(key: str) -> int:
    """Where the producer's default partitioner puts ``key`` on a two-partition topic."""
    partition: int = DefaultPartitioner()(key.encode(), [0, 1], [0, 1])
    return partition


def _two_per_partition(partner_id: uuid.UUID) -> list[IssueUpdated]:
    """Four events, two of them keyed to each partition of a two-partition topic."""
    events: list[IssueUpdated] = []
    while len(events) < 4:
        event = updated_event(partner_id)
        if sum(_partition(e.key()) == _partition(event.key()) for e in events) < 2:
            events.append(event)
    return events


async def test_a_relay_that_cannot_reach_the_database_says_so_and_keeps_its_producer(
    bootstrap_servers: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection is an ``OSError`` from either client: the relay tells the
    database's from the broker's by where it came from."""
    nowhere = create_engine(DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:9/x"))
    relay = relay_for(
        nowhere,
        UnitOfWorkFactory(create_session_factory(nowhere)),
        kafka(bootstrap_servers, topic_prefix),
    )
    closed: list[bool] = []

    async def close_producer() -> None:
        closed.append(True)

    relay._close_producer = close_producer  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:

        async def warned() -> bool:
            return _said(caplog, "outbox relay cannot reach the database")

        await eventually(warned, message="the relay never said the database was unreachable")
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        await nowhere.dispose()
    assert not _said(caplog, "cannot reach the broker")
    assert closed == [True]  # once, as the relay ends; not for the database's errors


def _said(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_a_redelivered_event_is_processed_once(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    event = updated_event(partner.id)
    async with uows() as uow:
        for _ in range(3):  # the same event id published three times, as a relay retry would
            enqueue(uow.session, event, service="test", event_id="evt-duplicate")
        await uow.commit()

    handled: list[str] = []

    async def handler(uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        handled.append(envelope.id)

    settings = kafka(bootstrap_servers, topic_prefix)
    relay = relay_for(engine, uows, settings)
    loop = ConsumerLoop(
        ConsumerSpec("probe", "issues.updated", handler),
        uow_factory=uows,
        kafka=settings,
        settings=ConsumerSettings(),
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(loop.run(stop))]
    try:
        await eventually(lambda: consumed(loop, 3), timeout=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert handled == ["evt-duplicate"]
    assert await scalar(engine, "SELECT count(*) FROM inbox WHERE consumer = 'probe'") == 1


async def test_the_reconciler_re_drives_an_issue_stuck_in_received(
    engine: AsyncEngine, database_url: str
) -> None:
    uows, _ = await stuck_in_received(engine, database_url)

    settings = ReconcilerSettings(stuck_after_s=60)
    assert await reconcile_once(uows, settings) == 1
    assert await scalar(engine, "SELECT count(*) FROM outbox_pending") == 1
    assert await reconcile_once(uows, settings) == 0, "an unsent row is not re-driven again"


async def test_the_reconciler_re_drives_only_the_latest_announcement_of_an_issue_classified_again(
    engine: AsyncEngine, database_url: str
) -> None:
    uows, issue_id = await stuck_in_received(engine, database_url, announcements=2)

    assert await reconcile_once(uows, ReconcilerSettings(stuck_after_s=60)) == 1
    ids = "SELECT {} FROM outbox WHERE aggregate_id = :issue"
    unsent = await scalar(engine, "SELECT id FROM outbox_pending")
    assert unsent == await scalar(engine, ids.format("max(id)"), issue=str(issue_id))


async def test_a_batch_with_one_failing_event_keeps_the_others_once_and_parks_that_one(
    engine: AsyncEngine,
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    uows, partner_id, ids = await queued_updates(engine, database_url, 12)
    bad = ids[5]
    settings = kafka(bootstrap_servers, topic_prefix)
    await relay_all(engine, uows, settings, 12)

    async def handler(uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        # An effect in the handler's transaction: kept once per good event, never for the bad.
        effect = updated_event(partner_id)
        enqueue(uow.session, effect, service="probe", event_id=f"effect-{envelope.id}")
        if envelope.id == bad:
            raise RuntimeError("this one cannot be handled")

    loop = ConsumerLoop(
        ConsumerSpec("probe", "issues.updated", handler),
        uow_factory=uows,
        kafka=settings,
        settings=ConsumerSettings(max_attempts=2, retry_backoff_s=0.01),
    )
    dlq = TopicNames(topic_prefix).dlq("issues.updated")
    stop = asyncio.Event()
    fetched = _batch_sizes("consume", "probe")
    consuming = asyncio.create_task(loop.run(stop))
    try:
        await eventually(lambda: consumed(loop, 11), timeout=30)
        parked = await read_topic(bootstrap_servers, dlq, expected=1)
    finally:
        stop.set()
        await consuming
    assert "failed together" in caplog.text
    # Each record was fetched once, in batches of several, handled alone after the failure.
    batches, records = _batch_sizes("consume", "probe")
    assert records - fetched[1] == 12
    assert 1 <= batches - fetched[0] < 12
    assert await scalar(engine, "SELECT count(*) FROM inbox WHERE consumer = 'probe'") == 11
    effects = "SELECT count(*) FROM outbox WHERE event_id LIKE 'effect-%'"
    assert await scalar(engine, effects) == 11
    assert await scalar(engine, f"SELECT count(*) FROM outbox WHERE event_id = 'effect-{bad}'") == 0
    assert event_ids(parked) == [bad]
    assert dict(parked[0].headers)["dlq.reason"] == b"RuntimeError: this one cannot be handled"


async def test_a_poison_record_read_again_is_parked_once_and_a_replay_of_it_again(
    engine: AsyncEngine, bootstrap_servers: str, topic_prefix: str
) -> None:
    async def handler(uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        raise AssertionError("a poison record never reaches the handler")

    names = TopicNames(topic_prefix)
    processor = updates_processor(engine, names, "probe", handler)

    def poison(offset: int) -> ConsumerRecord[bytes, bytes]:
        value = b"not an event"
        return ConsumerRecord(
            names("issues.updated"), 0, offset, 1_700_000_000_000, 0, b"k", value, None, 1,
            len(value), [],
        )  # fmt: skip

    settings = kafka(bootstrap_servers, topic_prefix)
    await ensure_topics(settings)
    dlq = create_producer(settings, service="probe-dlq")
    await dlq.start()
    try:
        stop = asyncio.Event()
        # Read, parked, offset lost (a rebalance), read again; then replayed at a new offset.
        for record in (poison(7), poison(7), poison(8)):
            await processor.process([record], dlq=dlq, stop=stop)
    finally:
        await dlq.stop()
    parked = await read_topic(bootstrap_servers, names.dlq("issues.updated"))
    sources = [dict(r.headers)["dlq.source"].decode().rsplit("/", 1)[1] for r in parked]
    assert sources == ["7", "8"]
    markers = "SELECT count(*) FROM inbox WHERE consumer = 'probe.dlq'"
    assert await scalar(engine, markers) == 2


async def test_each_event_handled_logs_one_line_with_its_ids_together_or_alone(
    engine: AsyncEngine, topic_prefix: str
) -> None:
    async def handler(uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        return None

    names = TopicNames(topic_prefix)
    events = [updated_event(uuid.uuid4()) for _ in range(3)]

    def record(offset: int, event: IssueUpdated) -> ConsumerRecord[bytes, bytes]:
        _, value, headers = encode(event, service="test", event_id=f"line-{offset}")
        return ConsumerRecord(
            names("issues.updated"), 0, offset, 1_700_000_000_000, 0, event.key().encode(),
            value, None, 1, len(value), headers,
        )  # fmt: skip

    records = [record(n, event) for n, event in enumerate(events)]
    stop = asyncio.Event()
    dlq = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")  # never started: nothing is parked
    # The processor's event line is a structlog logger made with the configuration of its
    # making, so it is made inside the capture.
    with structlog.testing.capture_logs() as logs:
        processor = updates_processor(engine, names, "lines", handler)
        await processor.process(records[:2], dlq=dlq, stop=stop)  # together
        await processor.process(records[2:], dlq=dlq, stop=stop)  # alone
        await processor.process(records[:1], dlq=dlq, stop=stop)  # alone, seen before
    lines = [line for line in logs if line["event"].startswith("event ")]
    assert all(line["logger"] == "shared.kafka.processing" for line in lines)
    assert all(line["event_type"] == IssueUpdated.TYPE for line in lines)
    ids = ("event", "event_id", "issue_id", "partner_id")
    assert [tuple(line[key] for key in ids) for line in lines] == [
        ("event processed", f"line-{n}", str(event.issue_id), str(event.partner_id))
        for n, event in enumerate(events)
    ] + [("event duplicate", "line-0", str(events[0].issue_id), str(events[0].partner_id))]


def updates_processor(
    engine: AsyncEngine, names: TopicNames, name: str, handler: Handler
) -> EventProcessor:
    """A consumer ``name`` of ``issues.updated`` whose records a test hands it itself."""
    return EventProcessor(
        ConsumerSpec(name, "issues.updated", handler),
        uow_factory=UnitOfWorkFactory(create_session_factory(engine)),
        settings=ConsumerSettings(),
        names=names,
        group_id=name,
        beat=lambda: None,
    )
