"""Rows read or marked by key stay index look-ups on PostgreSQL, whatever plan it has kept.

PostgreSQL plans a prepared statement generically once it has run a few times, and keeps that
plan. Made on a nearly empty table (a new database), a list of keys matched against the table
(``IN``, ``= ANY``) is a scan of all of it: the relay's marking took 6 ms per batch once the
outbox held 10,000 rows. The statements below are checked in exactly that plan.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

from services.intake import accept_writes, customer_lookups
from services.notifier import requests as notifier_requests
from shared import correlation_lock, issue_state
from shared.db.base import table_of
from shared.db.direct import Direct
from shared.db.engine import create_session_factory
from shared.db.listed import listed_ids
from shared.db.loaded import get, loaded
from shared.db.models import Issue, Partner
from shared.db.staged import joined
from shared.kafka import outbox
from tests.support.factories import accepted_issues, seed_partner


async def test_rows_looked_up_by_key_are_each_found_row_once(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    events = await accepted_issues(engine, partner.id, ["t0", "t1", "t2"])
    keys = [events[2].issue_id, events[0].issue_id, events[2].issue_id, uuid.uuid4()]
    async with Direct(engine).statements() as statements:

        async def refs(ids: list[uuid.UUID]) -> list[str]:
            values = {"keys": listed_ids(ids, statements.dialect)}
            rows = await statements.fetch(issue_state._issues_by_id, values)
            return sorted(row[_REF] for row in rows)

        assert await refs(keys) == ["t0", "t2"]
        assert await refs([events[1].issue_id]) == ["t1"], "each call its own keys"
        assert await refs([]) == []


_REF = [column.key for column in table_of(Issue).columns].index("external_ref")


async def test_rows_read_directly_are_the_sessions_own(
    database_url: str, engine: AsyncEngine
) -> None:
    """Found by ``session.get`` without a query, changed and flushed like any it loaded."""
    partner = await seed_partner(database_url)
    events = await accepted_issues(engine, partner.id, ["d0", "d1"])
    ids = [e.issue_id for e in events]
    sessions = create_session_factory(engine)
    async with sessions() as session:
        statements = await joined(session)
        keys = listed_ids([*ids, ids[0], uuid.uuid4()], statements.dialect)
        rows = await statements.fetch(issue_state._issues_by_id, {"keys": keys})
        found = loaded(session, Issue, rows)
        assert sorted(issue.external_ref for issue in found) == ["d0", "d1"]
        assert not session.dirty, "loaded unchanged: nothing to write"
        assert not session.new
        assert all(inspect(issue).persistent for issue in found)
        queried: list[Any] = []
        event.listen(session.sync_session, "do_orm_execute", queried.append)
        first = await session.get(Issue, ids[0])
        assert not queried, "no query"
        assert first is not None
        assert first in found
        assert loaded(session, Issue, rows) == found, "the instances the session holds"
        first.title = "changed"
        await session.commit()
    async with sessions() as session:
        assert (await session.get(Issue, ids[0])).title == "changed"  # type: ignore[union-attr]


@pytest.mark.usefixtures("postgresql_only")  # SQLite: the first transaction has the writes
async def test_rows_read_again_update_the_instances_the_session_holds(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        statements = await joined(session)
        keys = {"keys": listed_ids([partner.id], statements.dialect)}
        (held,) = loaded(
            session, Partner, await statements.fetch(issue_state._partners_by_id, keys)
        )
        async with sessions() as other:  # another transaction changes the row meanwhile
            changed = await other.get(Partner, partner.id)
            assert changed is not None
            changed.name = "changed elsewhere"
            await other.commit()
        rows = await statements.fetch(issue_state._partners_by_id, keys)
        assert loaded(session, Partner, rows) == [held]
        assert held.name != "changed elsewhere", "as a query would: the instance as it was"
        assert loaded(session, Partner, rows, again=True) == [held]
        assert held.name == "changed elsewhere"
        assert not session.dirty, "read, not changed"


async def test_get_takes_a_loaded_instance_from_the_session_without_asking_it(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``AsyncSession`` call (and so no greenlet) for an instance the session holds; one
    that is expired, or not held, is the session's own ``get``."""
    partner = await seed_partner(database_url)
    events = await accepted_issues(engine, partner.id, ["g0", "g1"])
    ids = [e.issue_id for e in events]
    sessions = create_session_factory(engine)
    async with sessions() as session:
        statements = await joined(session)
        rows = await statements.fetch(
            issue_state._issues_by_id, {"keys": listed_ids(ids, statements.dialect)}
        )
        first, second = sorted(loaded(session, Issue, rows), key=lambda i: i.external_ref)
        asked: list[Any] = []
        session_get = session.get

        async def counted(*args: Any, **kwargs: Any) -> Any:
            asked.append(args)
            return await session_get(*args, **kwargs)

        monkeypatch.setattr(session, "get", counted)
        assert await get(session, Issue, first.id) is first
        assert not asked, "taken from the identity map"
        second_id = second.id
        session.expire(second)
        refreshed = await get(session, Issue, second_id)
        assert refreshed is second
        assert refreshed.external_ref == "g1"
        missing = uuid.uuid4()
        assert await get(session, Issue, missing) is None
        assert asked == [(Issue, second_id), (Issue, missing)]


def _built(build: Any) -> Any:
    return lambda dialect: build(dialect.name)


@pytest.mark.parametrize(
    "statement",
    [
        _built(issue_state._issues_by_id),
        _built(issue_state._partners_by_id),
        _built(correlation_lock._signals),
        _built(notifier_requests._own_requests),
        _built(customer_lookups._by_id),
        _built(customer_lookups._by_tenant),
        _built(outbox._claim_next),
        _built(outbox._claimed_rows),
        _built(outbox._published),
        _built(outbox._release),
    ],
    ids=[
        "issues",
        "partners",
        "cluster signals",
        "own microsoft requests",
        "customers by id",
        "customers by tenant",
        "relay claim",
        "relay claimed rows",
        "relay marks sent",
        "relay release",
    ],
)
async def test_a_plan_made_on_an_empty_table_looks_keys_up_in_the_index(
    engine: AsyncEngine, statement: Any
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's kept plans")
    compiled = statement(engine.dialect).compile(dialect=engine.dialect)
    assert isinstance(compiled, SQLCompiler)
    plan = await kept_plan(engine, compiled.string)
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan


async def kept_plan(engine: AsyncEngine, sql: str) -> str:
    """The plan PostgreSQL keeps for ``sql`` made now (its tables empty), every value NULL."""
    arguments = ", ".join(["NULL"] * len(set(re.findall(r"\$\d+", sql))))
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE kept AS {sql}")
        plan = "\n".join(row[0] for row in await raw.fetch(f"EXPLAIN EXECUTE kept({arguments})"))
        await connection.rollback()
    return plan


@pytest.mark.parametrize(
    "build",
    [
        issue_state._update_issue,
        accept_writes._insert_all,
        outbox.insert_leased,
        outbox._published,
        outbox._release,
    ],
    ids=["issues moved", "accepts", "outbox rows", "relay marks sent", "relay releases"],
)
async def test_a_plan_for_many_rows_at_once_made_on_an_empty_table_scans_none(
    engine: AsyncEngine, build: Any
) -> None:
    """The statements that take a batch's rows as arrays (shared.db.columnar): an UPDATE looks
    each row up in its key's index, and nothing scans a table."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's kept plans")
    sql = Direct(engine).prepared(build).columnar
    assert sql is not None
    plan = await kept_plan(engine, sql)
    assert "Seq Scan" not in plan, plan
    if build in (issue_state._update_issue, outbox._published, outbox._release):
        assert "Index Scan" in plan, plan
        assert "Tid Scan" in plan, plan
