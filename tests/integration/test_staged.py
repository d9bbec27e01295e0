"""Staged rows: written with their unit of work, never without it, never after a rollback."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Insert, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.base import table_of, utcnow
from shared.db.direct import bound
from shared.db.engine import create_session_factory
from shared.db.models import InboxRecord, OutboxMessage
from shared.db.staged import stage
from shared.db.uow import UnitOfWorkFactory
from shared.events.models import IssueUpdated
from shared.kafka.outbox import enqueue
from shared.vocabulary import IssueStatus
from tests.support.factories import scalar, seed_partner


def event(partner_id: uuid.UUID) -> IssueUpdated:
    return IssueUpdated(
        issue_id=uuid.uuid4(), partner_id=partner_id, status=IssueStatus.CLOSED, updated_at=utcnow()
    )


async def outbox_rows(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM outbox"))


@pytest.fixture
def uows(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_session_factory(engine))


async def stored_event_ids(uows: UnitOfWorkFactory) -> list[str]:
    async with uows() as uow:
        stored = select(OutboxMessage.event_id).order_by(OutboxMessage.id)
        return list(await uow.session.scalars(stored))


async def test_staged_rows_are_written_in_order_by_commit_and_seen_after_flush(
    database_url: str, uows: UnitOfWorkFactory
) -> None:
    partner = await seed_partner(database_url)
    async with uows() as uow:
        ids = [enqueue(uow.session, event(partner.id), service="test") for _ in range(3)]
        count = select(func.count()).select_from(OutboxMessage)
        assert await uow.session.scalar(count) == 0, "staged rows wait for the flush"
        await uow.flush()
        assert await uow.session.scalar(count) == 3
        ids.append(enqueue(uow.session, event(partner.id), service="test"))
        await uow.commit()
    assert await stored_event_ids(uows) == ids


async def test_a_rollback_drops_staged_rows_even_when_the_session_goes_on(
    database_url: str, uows: UnitOfWorkFactory
) -> None:
    partner = await seed_partner(database_url)
    async with uows() as uow:
        enqueue(uow.session, event(partner.id), service="test")
        await uow.session.rollback()
        kept = enqueue(uow.session, event(partner.id), service="test")
        await uow.commit()
    assert await stored_event_ids(uows) == [kept]


async def test_a_commit_that_is_not_the_unit_of_works_is_refused_with_rows_staged(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    async with create_session_factory(engine)() as session:
        enqueue(session, event(partner.id), service="test")
        with pytest.raises(RuntimeError, match="staged rows were not written"):
            await session.commit()
    assert await outbox_rows(engine) == 0


def insert_inbox_record(dialect: str) -> Insert:
    return insert(table_of(InboxRecord)).values(**bound("consumer", "event_id"))


async def test_a_staged_duplicate_fails_the_commit_as_an_integrity_error(
    database_url: str, uows: UnitOfWorkFactory
) -> None:
    partner = await seed_partner(database_url)
    async with uows() as uow:
        stage(uow.session, insert_inbox_record, {"consumer": "probe", "event_id": "evt-1"})
        enqueue(uow.session, event(partner.id), service="test")
        await uow.commit()
    async with uows() as uow:
        enqueue(uow.session, event(partner.id), service="test")
        stage(uow.session, insert_inbox_record, {"consumer": "probe", "event_id": "evt-1"})
        with pytest.raises(IntegrityError):
            await uow.commit()
    assert len(await stored_event_ids(uows)) == 1, "nothing of the failed transaction was kept"
