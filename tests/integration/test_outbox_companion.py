"""An outbox row with a companion record: a status change's ``issues.updated`` published with
the event that made it, from one row, against a real broker and database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import create_session_factory
from shared.db.uow import UnitOfWorkFactory
from shared.events.envelope import decode
from shared.events.models import IssueUpdated
from shared.kafka.outbox import BrokerUnavailable, enqueue, outbox_row
from shared.vocabulary import IssueStatus, Outcome
from tests.support.broker import kafka, read_topic, refuse_batches
from tests.support.factories import (
    classified_event,
    outbox_states,
    relay_for,
    relay_sessions,
    running_relay,
    seed_partner,
)


def _step(issue_id: uuid.UUID, partner_id: uuid.UUID) -> IssueUpdated:
    return IssueUpdated(
        issue_id=issue_id,
        partner_id=partner_id,
        status=IssueStatus.CLASSIFIED,
        note="partner_resolves (r)",
        updated_at=classified_event(issue_id, partner_id, Outcome.PARTNER_RESOLVES).classified_at,
    )


async def _queue(
    uows: UnitOfWorkFactory, partner_id: uuid.UUID, count: int
) -> dict[str, uuid.UUID]:
    """``count`` issues' ``issues.classified``, each with its ``issues.updated`` as companion,
    committed: their event ids and issue ids."""
    queued: dict[str, uuid.UUID] = {}
    async with uows() as uow:
        for _ in range(count):
            issue_id = uuid.uuid4()
            event = classified_event(issue_id, partner_id, Outcome.PARTNER_RESOLVES)
            companion = _step(issue_id, partner_id)
            queued[enqueue(uow.session, event, service="test", companion=companion)] = issue_id
        await uow.commit()
    return queued


def _by_issue(records: list[ConsumerRecord]) -> dict[str, list[tuple[str, str, int]]]:
    """Each key's records: CloudEvents type, id and partition."""
    found: dict[str, list[tuple[str, str, int]]] = {}
    for record in records:
        envelope = decode(record.value, list(record.headers))
        found.setdefault(record.key.decode(), []).append(
            (envelope.type, envelope.id, record.partition)
        )
    return found


async def _records(
    bootstrap_servers: str, prefix: str, classified: int, updated: int | None
) -> dict[str, Any]:
    """``classified`` records of ``issues.classified`` and ``updated`` of ``issues.updated``
    (None: every record there is, read until the topic stays quiet)."""
    events = await read_topic(bootstrap_servers, f"{prefix}issues.classified", expected=classified)
    steps = await read_topic(bootstrap_servers, f"{prefix}issues.updated", expected=updated)
    return {"classified": _by_issue(events), "updated": _by_issue(steps)}


async def test_a_claimed_row_publishes_its_event_and_its_companion_and_is_marked_once(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    queued = await _queue(uows, partner.id, 4)
    relay = relay_for(engine, uows, kafka(bootstrap_servers, topic_prefix))
    try:
        assert await relay.relay_once() == 4  # rows, not records
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {i: (True, False, None) for i in queued}
    found = await _records(bootstrap_servers, topic_prefix, 4, 4)
    for event_id, issue_id in queued.items():
        [(kind, published_id, partition)] = found["classified"][str(issue_id)]
        assert (kind, published_id) == ("csp.issue.classified", event_id)
        [(step, step_id, step_partition)] = found["updated"][str(issue_id)]
        assert step == "csp.issue.updated"
        assert step_id != event_id
        # Both topics have the same partitions: one issue's records share their number.
        assert step_partition == partition


@pytest.mark.usefixtures("leasing")
async def test_a_row_handed_to_the_relay_publishes_its_companion_too(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    partner = await seed_partner(database_url)
    uows = relay_sessions(engine, relay)
    try:
        queued = await _queue(uows, partner.id, 2)
        assert await outbox_states(engine) == {i: (False, True, 1) for i in queued}
        assert await relay._claim() == []  # leased: only the hand-over publishes them
        assert await relay.relay_once() == 2
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {i: (True, False, None) for i in queued}
    found = await _records(bootstrap_servers, topic_prefix, 2, 2)
    assert set(found["updated"]) == {str(i) for i in queued.values()}


async def test_a_row_whose_companion_the_broker_refused_is_released_and_both_go_again(
    engine: AsyncEngine,
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A row counts as sent only when all its records went out; sent again, each record keeps
    its event id, so a reader that deduplicates by id sees each once."""
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    queued = await _queue(uows, partner.id, 3)
    relay = relay_for(engine, uows, kafka(bootstrap_servers, topic_prefix))
    producer = await relay._ensure_producer()
    try:
        refuse_batches(monkeypatch, producer, lambda topic, _: topic.endswith("issues.updated"))
        with pytest.raises(BrokerUnavailable):
            await relay.relay_once()
        assert await outbox_states(engine) == {i: (False, False, 1) for i in queued}
        monkeypatch.undo()
        assert await relay.relay_once() == 3
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {i: (True, False, None) for i in queued}
    # Six classified records (each row went twice) but three steps: the refused ones never
    # reached the log. Every step there is is read, so one sent twice would show.
    found = await _records(bootstrap_servers, topic_prefix, 6, None)
    for event_id, issue_id in queued.items():
        first, again = found["classified"][str(issue_id)]
        assert first[1] == again[1] == event_id
        [(step, _, _)] = found["updated"][str(issue_id)]
        assert step == "csp.issue.updated"


def test_a_companion_must_share_the_events_key() -> None:
    partner_id = uuid.uuid4()
    event = classified_event(uuid.uuid4(), partner_id, Outcome.PARTNER_RESOLVES)
    with pytest.raises(ValueError, match="keyed"):
        outbox_row(event, service="test", companion=_step(uuid.uuid4(), partner_id))
