"""A PSA closing an issue while a consumer's batch is moving it: neither move is lost."""

from __future__ import annotations

import asyncio
import uuid
from typing import cast

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.classifier.handler import IssueClassifier
from services.classifier.rulebook import RuleBook
from services.intake.deps import Principal
from services.intake.issue_updates import update_issue
from services.intake.schemas import IssuePatch
from services.notifier.connector import SubmissionPolicy
from services.notifier.handler import IssueRouter, preload_batch
from shared.db.engine import create_session_factory
from shared.db.models import Issue
from shared.db.models import IssueEvent as TimelineEntry
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope, decode, encode
from shared.events.models import IssueEvent
from shared.kafka.consumer import ConsumerSpec
from shared.kafka.processing import EventProcessor, Handler, Preload
from shared.kafka.topics import TopicNames
from shared.settings import ClassifierSettings, ConsumerSettings
from shared.vocabulary import IssueStatus, Outcome, Role
from tests.support.factories import (
    accepted_issues,
    classified_event,
    eventually,
    scalar,
    seed_partner,
    updated_event,
)

# A consumer's preload and handler, as its ConsumerSpec names them.
Consumer = tuple[Preload, Handler]


@pytest.mark.usefixtures("postgresql_only")
async def test_a_close_during_classification_waits_and_is_kept(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    [received] = await accepted_issues(engine, partner.id, ["race-classify"])
    classifier = IssueClassifier(RuleBook.load(None, None), settings=ClassifierSettings())
    consumer = (classifier.preload, classifier.handle)
    steps = await _close_while_consuming(engine, partner.id, received, consumer)
    assert steps == [IssueStatus.RECEIVED, IssueStatus.CLASSIFIED, IssueStatus.CLOSED]


@pytest.mark.usefixtures("postgresql_only")
async def test_a_close_during_routing_waits_and_is_kept(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    [received] = await accepted_issues(engine, partner.id, ["race-route"])
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as uow:
        issue = await uow.session.get(Issue, received.issue_id)
        assert issue is not None
        issue.status = IssueStatus.CLASSIFIED
        await uow.commit()
    router = IssueRouter({}, SubmissionPolicy(False, frozenset(), frozenset()))
    classified = classified_event(received.issue_id, partner.id, Outcome.PARTNER_RESOLVES)
    steps = await _close_while_consuming(
        engine, partner.id, classified, (preload_batch, router.handle)
    )
    assert steps == [IssueStatus.RECEIVED, IssueStatus.ROUTED, IssueStatus.CLOSED]


async def test_an_event_handled_alone_is_preloaded_as_a_batch_of_one(
    engine: AsyncEngine,
) -> None:
    """A batch that fails is handled again one event at a time; each such transaction reads
    (and so locks) its issue through the consumer's preload as well."""
    preloaded: list[list[str]] = []
    handled: list[str] = []

    async def preload(_uow: UnitOfWork, envelopes: list[Envelope]) -> object:
        preloaded.append([e.id for e in envelopes])
        return None

    async def handler(_uow: UnitOfWork, envelope: Envelope, _prepared: object) -> None:
        if not handled:
            handled.append("failed")
            raise RuntimeError("the batch fails once")
        handled.append(envelope.id)

    processor = EventProcessor(
        ConsumerSpec("probe", "issues.updated", handler, preload=preload),
        uow_factory=UnitOfWorkFactory(create_session_factory(engine)),
        settings=ConsumerSettings(),
        names=TopicNames("t."),
        group_id="probe",
        beat=lambda: None,
    )
    events = [updated_event(uuid.uuid4()) for _ in range(2)]
    records = [_record(n, event) for n, event in enumerate(events)]
    ids = [decode(r.value or b"", list(r.headers)).id for r in records]
    unused_dlq = cast(AIOKafkaProducer, None)  # nothing here is dead-lettered
    await processor.process(records, dlq=unused_dlq, stop=asyncio.Event())
    assert preloaded == [ids, [ids[0]], [ids[1]]]
    assert handled == ["failed", *ids]


def _record(offset: int, event: IssueEvent) -> ConsumerRecord[bytes, bytes]:
    _, value, headers = encode(event, service="test")
    return ConsumerRecord(
        "t.issues.updated", 0, offset, 1_700_000_000_000, 0, b"k", value, None, 1, len(value),
        headers,
    )  # fmt: skip


async def _close_while_consuming(
    engine: AsyncEngine, partner_id: uuid.UUID, event: IssueEvent, consumer: Consumer
) -> list[str]:
    """The consumer's batch reads the issue; the PSA closes it; the batch moves it on and
    commits. The close must wait for the batch, then apply to what the batch wrote: the
    issue's timeline, returned, ends with the batch's step and then the close."""
    preload, handle = consumer
    uows = UnitOfWorkFactory(create_session_factory(engine))
    principal = Principal(partner_id=partner_id, role=Role.ADMIN_AGENT, key_id=uuid.uuid4())
    patch = IssuePatch(status=IssueStatus.CLOSED, note="The customer withdrew it.")
    envelope = _envelope(event)
    async with uows() as uow:
        _held = await preload(uow, [envelope])
        closing = asyncio.create_task(update_issue(uows(), principal, event.issue_id, patch))
        await _waiting_or_done(engine, closing)
        await handle(uow, envelope, None)
        await uow.commit()
    assert (await closing).status is IssueStatus.CLOSED
    async with uows() as uow:
        status = await uow.session.scalar(select(Issue.status).where(Issue.id == event.issue_id))
        steps = await uow.session.scalars(
            select(TimelineEntry.status)
            .where(TimelineEntry.issue_id == event.issue_id)
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
        timeline = [str(step) for step in steps]
    assert status == IssueStatus.CLOSED, f"the close was overwritten: {timeline}"
    return timeline


async def _waiting_or_done(engine: AsyncEngine, task: asyncio.Task[object]) -> None:
    """Until ``task``'s transaction waits for a lock (or ``task`` ends, if nothing held it)."""

    async def waiting_or_done() -> bool:
        if task.done():
            return True
        waiting = await scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        return bool(waiting)

    await eventually(
        waiting_or_done,
        timeout=5,
        interval=0.01,
        message="the close neither finished nor waited for a lock",
    )


def _envelope(event: IssueEvent) -> Envelope:
    _, value, headers = encode(event, service="test")
    return decode(value, headers)
