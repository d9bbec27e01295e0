"""The accept's three writes land together or not at all, on both databases."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.accept_writes import one_statement, store
from services.intake.idempotency import IdempotentRequest, StoredAnswer
from shared.db.base import utcnow
from shared.db.direct import Direct, DirectStatements
from shared.db.engine import create_session_factory
from shared.db.models import Issue, IssueEvent, OutboxMessage
from shared.events.envelope import decode
from shared.events.models import IssueReceived
from shared.vocabulary import Severity
from tests.support.factories import seed_partner


def received(partner_id: uuid.UUID, ref: str) -> IssueReceived:
    return IssueReceived(
        issue_id=uuid.uuid4(),
        partner_id=partner_id,
        external_ref=ref,
        title="Outlook cannot connect",
        description="Since 9:00 nobody can send mail.",
        service="Exchange Online",
        severity=Severity.MODERATE,
        contact={"name": "Ana", "email": "ana@example.com"},
        received_at=utcnow(),
    )


async def test_an_issue_its_first_step_and_its_event_are_written_once_per_ticket(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    first, again = received(partner.id, "T-1"), received(partner.id, "T-1")
    for event, expected in ((first, True), (again, False)):
        async with direct.work() as work:
            assert await store(work, event, service="intake", detail="accepted") is expected
            await work.commit()

    async with create_session_factory(engine)() as session:
        issues = list(await session.scalars(select(Issue)))
        steps = list(await session.scalars(select(IssueEvent)))
        queued = list(await session.scalars(select(OutboxMessage)))
    assert [(i.id, i.external_ref, i.status, i.contact) for i in issues] == [
        (first.issue_id, "T-1", "received", {"name": "Ana", "email": "ana@example.com"})
    ]
    assert issues[0].created_at == first.received_at
    assert [(s.issue_id, s.status, s.detail, s.at) for s in steps] == [
        (first.issue_id, "received", "accepted", first.received_at)
    ]
    [row] = queued
    assert (row.topic, row.key, row.event_type) == (
        "issues.received",
        str(first.issue_id),
        first.TYPE,
    )
    assert (row.attempts, row.sent_at, row.claimed_until) == (0, None, None)
    envelope = decode(row.value, [(name, value.encode()) for name, value in row.headers])
    assert envelope.id == row.event_id
    assert envelope.data == first


async def test_without_a_transaction_the_accept_is_one_statement_or_refused(
    database_url: str, engine: AsyncEngine
) -> None:
    """PostgreSQL writes all three rows in one atomic statement, so the intake sends it
    without BEGIN and COMMIT; SQLite needs three, and refuses to run them outside one."""
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    event = received(partner.id, "T-2")
    async with direct.statements() as statements:
        if one_statement(engine.dialect.name):
            assert await store(statements, event, service="intake", detail="accepted")
            assert not await store(
                statements, received(partner.id, "T-2"), service="intake", detail="again"
            )
        else:
            with pytest.raises(TypeError):
                await store(statements, event, service="intake", detail="accepted")

    expected = 1 if one_statement(engine.dialect.name) else 0
    async with create_session_factory(engine)() as session:
        for model in (Issue, IssueEvent, OutboxMessage):
            rows = await session.scalar(select(func.count()).select_from(model))
            assert rows == expected, model.__name__


async def test_an_accept_without_idempotency_key_wakes_the_relay_once(
    database_url: str, engine: AsyncEngine
) -> None:
    woken: list[None] = []
    direct = Direct(engine, on_commit=lambda: woken.append(None))
    partner = await seed_partner(database_url)
    event = received(partner.id, "T-3")

    async def produce(work: DirectStatements) -> StoredAnswer:
        await store(work, event, service="intake", detail="accepted")
        return StoredAnswer(202, {"id": str(event.issue_id)})

    request = IdempotentRequest(None, "POST", "/v1/issues")
    answer = await request.run_direct(
        direct, partner.id, {}, produce, one_write=one_statement(engine.dialect.name)
    )
    assert answer.status_code == 202
    assert len(woken) == 1
    async with create_session_factory(engine)() as session:
        assert await session.get(Issue, event.issue_id) is not None
