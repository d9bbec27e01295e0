"""Units of work on the driver connection write and read rows exactly as the ORM does."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of, utcnow
from shared.db.columnar import inserted, updated
from shared.db.direct import Build, Direct, bound
from shared.db.engine import create_engine, create_session_factory
from shared.db.errors import database_unavailable
from shared.db.models import IdempotencyRecord, OutboxMessage, OutboxPending, Partner
from shared.events.models import IssueUpdated
from shared.kafka.outbox import insert_outbox, outbox_row
from shared.settings import DatabaseSettings
from shared.vocabulary import IssueStatus
from tests.support.factories import scalar, seed_partner

COLUMNS = ("partner_id", "key", "request_hash", "status_code", "response", "location")


def record_insert(dialect: str) -> ClauseElement:
    """``created_at`` left out: its Python default fills it."""
    return insert(table_of(IdempotencyRecord)).values(**bound(*COLUMNS))


def record_select(dialect: str) -> ClauseElement:
    record = table_of(IdempotencyRecord)
    return select(
        record.c.partner_id, record.c.response, record.c.location, record.c.created_at
    ).where(record.c.key == bindparam("key"))


def values(partner_id: uuid.UUID, key: str) -> dict[str, object]:
    return {
        "partner_id": partner_id,
        "key": key,
        "request_hash": "h" * 64,
        "status_code": 202,
        "response": {"id": "x", "nested": {"ü": [1, None]}},
        "location": None,
    }


async def test_a_row_written_directly_reads_back_through_the_orm_and_directly_alike(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    before = utcnow()
    async with direct.work() as work:
        assert await work.execute(record_insert, values(partner.id, "k1")) == 1
        await work.commit()

    async with create_session_factory(engine)() as session:
        stored = await session.get(IdempotencyRecord, (partner.id, "k1"))
    assert stored is not None
    assert stored.response == {"id": "x", "nested": {"ü": [1, None]}}
    assert stored.location is None
    assert before <= stored.created_at <= utcnow()
    assert stored.created_at.tzinfo is not None

    async with direct.statements() as statements:
        [row] = await statements.fetch(record_select, {"key": "k1"})
        assert row == (partner.id, stored.response, None, stored.created_at)
        [returned] = await statements.fetch(record_moved, {"key": "k1", "moved_to": "/v1/x"})
    assert returned == (partner.id, "/v1/x", stored.created_at)


def record_moved(dialect: str) -> ClauseElement:
    record = table_of(IdempotencyRecord)
    return (
        update(record)
        .where(record.c.key == bindparam("key"))
        .values(location=bindparam("moved_to"))
        .returning(record.c.partner_id, record.c.location, record.c.created_at)
    )


def record_recounted(dialect: str) -> ClauseElement:
    """Values the statement fixes itself: a literal, a NULL and an expression."""
    record = table_of(IdempotencyRecord)
    return (
        update(record)
        .where(record.c.key == bindparam("key"))
        .values(status_code=record.c.status_code + 1, location=None, request_hash="fixed")
    )


def record_inserted(dialect: str) -> ClauseElement:
    """:func:`record_insert` whose rows go together, a column to a parameter (PostgreSQL)."""
    return inserted(table_of(IdempotencyRecord), *COLUMNS)


def record_inserted_returned(dialect: str) -> ClauseElement:
    record = table_of(IdempotencyRecord)
    return inserted(record, *COLUMNS).returning(record.c.key, record.c.response)


def record_returned(dialect: str) -> ClauseElement:
    record = table_of(IdempotencyRecord)
    return insert(record).values(**bound(*COLUMNS)).returning(record.c.key, record.c.response)


# Each INSERT as one run per row, and as one statement for all rows where the database has it.
INSERTS = pytest.mark.parametrize(
    ("inserting", "returning"),
    [(record_insert, record_returned), (record_inserted, record_inserted_returned)],
    ids=["row by row", "by column"],
)


def partner_renamed(dialect: str) -> ClauseElement:
    return updated(table_of(Partner), "id", "name", "locale", by="partner_id")


async def test_rows_updated_together_end_as_one_run_after_another_would_leave_them(
    database_url: str, engine: AsyncEngine
) -> None:
    """A row given twice ends as the later run leaves it; a key no row has changes nothing."""
    direct = Direct(engine)
    assert (direct.prepared(partner_renamed).columnar is not None) is (
        engine.dialect.name == "postgresql"
    )
    first, second, third = [(await seed_partner(database_url)).id for _ in range(3)]
    at = {"updated_at": utcnow()}  # partners stamp it on every update: direct writes say so
    async with direct.work() as work:
        await work.executemany(
            partner_renamed,
            [
                {"partner_id": first, "name": "first, then", "locale": "de", **at},
                {"partner_id": second, "name": "second", "locale": "fr", **at},
                {"partner_id": uuid.uuid4(), "name": "nobody", "locale": "es", **at},
                {"partner_id": first, "name": "first, at last", "locale": "es", **at},
            ],
        )
        await work.commit()
    async with create_session_factory(engine)() as session:
        named = {p.id: (p.name, p.locale) for p in await session.scalars(select(Partner))}
    assert named[first] == ("first, at last", "es")
    assert named[second] == ("second", "fr")
    assert named[third][1] == "en"
    assert len(named) == 3


async def test_only_inserts_made_to_go_by_column_do_so_and_only_on_postgresql(
    engine: AsyncEngine,
) -> None:
    direct = Direct(engine)
    by_column = engine.dialect.name == "postgresql"
    assert (direct.prepared(record_inserted).columnar is not None) is by_column
    assert (direct.prepared(record_inserted_returned).columnar is not None) is by_column
    assert direct.prepared(record_insert).columnar is None
    assert direct.prepared(record_returned).columnar is None


@INSERTS
async def test_one_statement_runs_for_many_rows_with_the_values_it_fixes_itself(
    database_url: str, engine: AsyncEngine, inserting: Build, returning: Build
) -> None:
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    keys = ["m1", "m2", "m3"]
    async with direct.work() as work:
        await work.executemany(
            inserting, [{**values(partner.id, k), "location": f"/{k}"} for k in keys]
        )
        await work.executemany(record_recounted, [{"key": k} for k in keys[:2]])
        await work.executemany(record_recounted, [])
        await work.commit()

    async with create_session_factory(engine)() as session:
        stored = (
            await session.scalars(select(IdempotencyRecord).order_by(IdempotencyRecord.key))
        ).all()
    assert [(r.key, r.status_code, r.location, r.request_hash) for r in stored] == [
        ("m1", 203, None, "fixed"),
        ("m2", 203, None, "fixed"),
        ("m3", 202, "/m3", "h" * 64),
    ]
    assert all(r.created_at.tzinfo is not None for r in stored)


@INSERTS
async def test_executemany_outside_a_transaction_writes_all_rows_or_none(
    database_url: str, engine: AsyncEngine, inserting: Build, returning: Build
) -> None:
    """As asyncpg's own: in SQLite's autocommit each row would otherwise commit by itself."""
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    async with direct.statements() as statements:
        await statements.executemany(inserting, [values(partner.id, "kept")])
        with pytest.raises(IntegrityError):
            await statements.executemany(
                inserting, [values(partner.id, k) for k in ("new", "kept")]
            )
        await statements.executemany(inserting, [values(partner.id, "after")])
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys WHERE key = 'new'") == 0
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys") == 2


@INSERTS
async def test_fetchmany_answers_each_run_in_order_and_writes_all_rows_or_none(
    database_url: str, engine: AsyncEngine, inserting: Build, returning: Build
) -> None:
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    keys = ["b", "a", "c", *(f"k{n:03}" for n in range(200, 0, -1))]
    async with direct.statements() as statements:
        returned = await statements.fetchmany(returning, [values(partner.id, k) for k in keys])
        assert returned == [(k, values(partner.id, k)["response"]) for k in keys]
        assert await statements.fetchmany(returning, []) == []
        with pytest.raises(IntegrityError):
            await statements.fetchmany(returning, [values(partner.id, k) for k in ("new", "a")])
        moved = await statements.fetchmany(
            record_moved, [{"key": k, "moved_to": f"/{k}"} for k in ("c", "missing", "a")]
        )
    assert [location for _, location, _ in moved] == ["/c", "/a"]
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys WHERE key = 'new'") == 0
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys") == len(keys)


async def test_a_value_the_statement_has_no_column_for_is_refused_not_left_out(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    row = {**values(partner.id, "typo"), "locaton": "/typo"}
    async with direct.statements() as statements:
        with pytest.raises(KeyError, match="locaton"):
            await statements.execute(record_insert, row)
        with pytest.raises(KeyError, match="locaton"):
            await statements.executemany(record_insert, [values(partner.id, "fine"), row])
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys") == 0


async def test_work_left_without_commit_is_rolled_back_and_commit_calls_the_hook(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    committed: list[bool] = []
    direct = Direct(engine, on_commit=lambda: committed.append(True))
    async with direct.work() as work:
        await work.execute(record_insert, values(partner.id, "left"))
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys") == 0
    assert committed == []

    event = IssueUpdated(
        issue_id=uuid.uuid4(), partner_id=partner.id, status=IssueStatus.CLOSED, updated_at=utcnow()
    )
    async with direct.work() as work:
        queued = outbox_row(event, service="test")
        await work.execute(insert_outbox, queued)
        event_id = queued["event_id"]
        await work.commit()
    assert committed == [True]
    async with create_session_factory(engine)() as session:
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.event_id == event_id))
        pending = list(await session.scalars(select(OutboxPending.id)))
    assert row is not None
    assert (row.attempts, row.claimed_until) == (0, None)
    assert pending == [row.id], "queued for the relay"
    assert row.topic == "issues.updated"
    assert utcnow() - row.created_at < timedelta(minutes=1)


async def test_a_violated_constraint_is_an_integrity_error_and_the_connection_is_reusable(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    async with direct.work() as work:
        await work.execute(record_insert, values(partner.id, "dup"))
        await work.commit()
    with pytest.raises(IntegrityError):
        async with direct.work() as work:
            await work.execute(record_insert, values(partner.id, "dup"))
    with pytest.raises(IntegrityError):
        async with direct.work() as work:
            await work.execute(record_insert, values(uuid.uuid4(), "no such partner"))
    async with direct.work() as work:
        assert await work.execute(record_insert, values(partner.id, "after")) == 1
        await work.commit()
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys") == 2


async def test_a_connection_lost_mid_work_is_reported_as_unavailable_and_not_reused(
    database_url: str, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a SQLite file has no server connection to lose")
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    async with direct.work() as work:
        [(pid,)] = await work.fetch(_backend_pid, {})
        await scalar(engine, f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(DBAPIError) as raised:
            await work.execute(record_insert, values(partner.id, "lost"))
    await reported_lost_and_replaced(raised.value, direct, partner.id)


async def reported_lost_and_replaced(
    error: DBAPIError, direct: Direct, partner_id: uuid.UUID
) -> None:
    """Answered as an outage (503), and the next unit of work gets a working connection."""
    assert error.connection_invalidated
    assert database_unavailable(error)
    async with direct.work() as work:
        assert await work.execute(record_insert, values(partner_id, "next")) == 1
        await work.commit()


def _backend_pid(dialect: str) -> ClauseElement:
    return select(func.pg_backend_pid())


async def test_a_pooled_connection_the_server_closed_is_reported_as_unavailable_once(
    database_url: str, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a SQLite file has no server connection to lose")
    partner = await seed_partner(database_url)
    direct = Direct(engine)
    async with direct.statements() as statements:
        [(pid,)] = await statements.fetch(_backend_pid, {})
    # From another engine: this one's only idle connection is the one to end.
    other = create_engine(DatabaseSettings(url=database_url))
    try:
        await scalar(other, f"SELECT pg_terminate_backend({pid})")
    finally:
        await other.dispose()
    await asyncio.sleep(0.2)
    with pytest.raises(DBAPIError) as raised:
        async with direct.statements() as statements:
            await statements.fetch(_backend_pid, {})
    await reported_lost_and_replaced(raised.value, direct, partner.id)
