"""The accept's three writes land together or not at all, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.accept_writes import (
    AcceptRows,
    _insert_all,
    accept_rows,
    one_statement,
    store,
    store_many,
)
from services.intake.accepts import Accepts
from shared.db.base import utcnow
from shared.db.direct import Direct
from shared.db.engine import create_session_factory
from shared.db.models import IdempotencyRecord, Issue, IssueEvent, OutboxMessage, OutboxPending
from shared.events.envelope import decode
from shared.events.models import IssueReceived
from tests.support.factories import received_event, seed_partner


async def test_an_issue_its_first_step_and_its_event_are_written_once_per_ticket(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    first, again = received_event(partner.id, "T-1"), received_event(partner.id, "T-1")
    for event, expected in ((first, True), (again, False)):
        async with direct.work() as work:
            assert (
                await store(work, accept_rows(event, service="intake", detail="accepted"))
                is expected
            )
            await work.commit()

    async with create_session_factory(engine)() as session:
        issues = list(await session.scalars(select(Issue)))
        steps = list(await session.scalars(select(IssueEvent)))
        queued = list(await session.scalars(select(OutboxMessage)))
        pending = list(await session.scalars(select(OutboxPending.id)))
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
    assert (row.attempts, row.claimed_until) == (0, None)
    assert pending == [row.id], "queued for the relay"
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
    event = received_event(partner.id, "T-2")
    async with direct.statements() as statements:
        if one_statement(engine.dialect.name):
            assert await store(statements, accept_rows(event, service="intake", detail="accepted"))
            again = accept_rows(received_event(partner.id, "T-2"), service="intake", detail="again")
            assert not await store(statements, again)
        else:
            with pytest.raises(TypeError):
                await store(statements, accept_rows(event, service="intake", detail="accepted"))

    expected = 1 if one_statement(engine.dialect.name) else 0
    async with create_session_factory(engine)() as session:
        for model in (Issue, IssueEvent, OutboxMessage):
            rows = await session.scalar(select(func.count()).select_from(model))
            assert rows == expected, model.__name__


async def test_accepts_written_together_store_each_once_and_wake_the_relay_once(
    database_url: str, engine: AsyncEngine
) -> None:
    """A batch holds new tickets, a ticket that is already an issue and the same new ticket
    twice: each new ticket is stored once with its step and event, the others write nothing,
    and the relay is woken once for the batch."""
    woken: list[None] = []
    direct = Direct(engine, on_commit=lambda: woken.append(None))
    partner = await seed_partner(database_url)
    async with direct.work() as work:
        assert await store(
            work, accept_rows(received_event(partner.id, "T-old"), service="intake", detail="a")
        )
        await work.commit()
    woken.clear()
    batch = [
        received_event(partner.id, "T-a"),
        received_event(partner.id, "T-old"),
        received_event(partner.id, "T-b"),
        received_event(partner.id, "T-a"),
    ]
    accepts = Accepts(direct, max_batch=10)
    results = await asyncio.gather(
        *(accepts.store(accept_rows(e, service="intake", detail="batch")) for e in batch)
    )
    await accepts.aclose()

    assert results == [True, False, True, False]
    assert len(woken) == 1
    async with create_session_factory(engine)() as session:
        issues = {i.external_ref: i.id for i in await session.scalars(select(Issue))}
        steps = [s.issue_id for s in await session.scalars(select(IssueEvent))]
        queued = [o.key for o in await session.scalars(select(OutboxMessage))]
    assert issues["T-a"] == batch[0].issue_id
    assert issues["T-b"] == batch[2].issue_id
    assert len(issues) == 3
    assert sorted(map(str, steps)) == sorted(map(str, issues.values()))
    assert sorted(queued) == sorted(map(str, issues.values()))


async def test_a_batch_the_database_refuses_is_written_one_accept_at_a_time(
    database_url: str, engine: AsyncEngine
) -> None:
    """One accept that breaks a constraint (a customer that does not exist) fails its own
    request; the others of its batch are stored."""
    direct = Direct(engine)
    partner = await seed_partner(database_url)
    good = [received_event(partner.id, f"T-{n}") for n in range(3)]
    bad = received_event(partner.id, "T-bad").model_copy(update={"customer_id": uuid.uuid4()})
    accepts = Accepts(direct, max_batch=10)
    results = await asyncio.gather(
        *(accepts.store(accept_rows(e, service="intake", detail="x")) for e in [*good, bad]),
        return_exceptions=True,
    )
    await accepts.aclose()

    assert results[:3] == [True, True, True]
    assert isinstance(results[3], IntegrityError)
    async with create_session_factory(engine)() as session:
        refs = set(await session.scalars(select(Issue.external_ref)))
        queued = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert refs == {"T-0", "T-1", "T-2"}
    assert queued == 3


async def test_idempotency_keys_are_recorded_with_the_accepts_they_stored(
    database_url: str, engine: AsyncEngine
) -> None:
    """In one batch: a keyed accept is stored with its key's record; a keyed accept of a ticket
    already an issue records nothing (its request records the answer it then gives); an
    unkeyed one records nothing. A key recorded already fails its own accept alone, whose
    issue is then not written either."""
    direct = Direct(engine)
    partner = await seed_partner(database_url)
    async with direct.work() as work:
        assert await store(
            work, accept_rows(received_event(partner.id, "K-old"), service="intake", detail="a")
        )
        await work.commit()
    new, known, plain = (received_event(partner.id, ref) for ref in ("K-new", "K-old", "K-plain"))
    taken = received_event(partner.id, "K-taken")
    accepts = Accepts(direct, max_batch=10)
    results = await asyncio.gather(
        accepts.store(_keyed(new, partner.id, "key-new")),
        accepts.store(_keyed(known, partner.id, "key-known")),
        accepts.store(accept_rows(plain, service="intake", detail="x")),
        accepts.store(_keyed(taken, partner.id, "key-new")),
        return_exceptions=True,
    )
    await accepts.aclose()

    assert list(results[:3]) == [True, False, True]
    assert isinstance(results[3], IntegrityError)
    async with create_session_factory(engine)() as session:
        keys: dict[str, object] = dict(
            (await session.execute(select(IdempotencyRecord.key, IdempotencyRecord.response))).all()
        )
        refs = set(await session.scalars(select(Issue.external_ref)))
    assert keys == {"key-new": {"id": str(new.issue_id)}}
    assert refs == {"K-old", "K-new", "K-plain"}


def _keyed(event: IssueReceived, partner_id: uuid.UUID, key: str) -> AcceptRows:
    record = {
        "partner_id": partner_id,
        "key": key,
        "request_hash": "h",
        "status_code": 202,
        "response": {"id": str(event.issue_id)},
        "location": None,
        "created_at": event.received_at,
    }
    return accept_rows(event, service="intake", detail="x", record=record)


async def test_a_batch_written_at_once_answers_each_accept_with_its_own_outbox_row(
    database_url: str, engine: AsyncEngine
) -> None:
    """On PostgreSQL a batch is one statement, its accepts passed as arrays: what it answers
    for each accept, in their order, is that accept's outbox row, the one the relay is handed
    (and marks sent by that id)."""
    direct = Direct(engine)
    if one_statement(direct.dialect):
        assert direct.prepared(_insert_all).columnar is not None
    partner = await seed_partner(database_url)
    events = [received_event(partner.id, ref) for ref in ("B-1", "B-2", "B-1", "B-3", "B-2")]
    batch = [accept_rows(e, service="intake", detail="x") for e in events]
    relay = HandedTo()
    stored = await store_many(direct, batch, relay)  # type: ignore[arg-type]

    assert stored == [True, True, False, True, False]
    async with create_session_factory(engine)() as session:
        rows = dict((await session.execute(select(OutboxMessage.id, OutboxMessage.event_id))).all())
    kept = [accept for accept, was in zip(batch, stored, strict=True) if was]
    expected = [accept.queued["event_id"] for accept in kept]
    if one_statement(direct.dialect):
        assert [rows[row_id] for row_id, _ in relay.handed] == expected
        assert [queued["event_id"] for _, queued in relay.handed] == expected
    else:
        assert sorted(rows.values()) == sorted(expected)


class HandedTo:
    """What a relay is leased and handed, as :func:`store_many` uses one."""

    def __init__(self) -> None:
        self.handed: list[tuple[int, dict[str, object]]] = []

    def lease(self) -> datetime:
        return utcnow() + timedelta(minutes=1)

    def hand(self, rows: list[tuple[int, dict[str, object]]]) -> None:
        self.handed.extend(rows)
