"""Migrations that move data keep it: rows written before them read the same after, and back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Uuid,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import migrate
from shared.db.engine import create_engine
from shared.settings import DatabaseSettings
from tests.support.database import DatabaseServer

# Filler for a column the test does not care about but the schema requires.
_FILLERS: tuple[tuple[type, Callable[[], Any]], ...] = (
    (Uuid, uuid.uuid4),
    (DateTime, lambda: datetime(2026, 12, 1, tzinfo=UTC)),
    (JSONB, dict),
    (JSON, dict),
    (Boolean, lambda: False),
    (Integer, lambda: 0),
    (LargeBinary, lambda: b""),
)


def _row(table: Table, **given: Any) -> dict[str, Any]:
    """``given``, and a value for every other column that must have one."""
    row = dict(given)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None:
            continue
        filler = next((make for kind, make in _FILLERS if isinstance(column.type, kind)), None)
        row[column.name] = filler() if filler else "x"
    return row


def _write_listed_request(connection: Connection, issues: list[uuid.UUID]) -> uuid.UUID:
    """At 0010: a partner, its issues, and a request listing them in ``issue_ids``."""

    def key(value: uuid.UUID) -> uuid.UUID | str:
        # Reflected, SQLite's keys are the CHAR(32) that SQLAlchemy's Uuid stores there.
        return value if connection.dialect.name == "postgresql" else value.hex

    tables = MetaData()
    tables.reflect(connection, only=["partners", "issues", "microsoft_requests"])
    partner_id, request_id = uuid.uuid4(), uuid.uuid4()
    partners, issue_table = tables.tables["partners"], tables.tables["issues"]
    requests = tables.tables["microsoft_requests"]
    connection.execute(partners.insert(), [_row(partners, id=key(partner_id), name="Contoso")])
    connection.execute(
        issue_table.insert(),
        [
            _row(issue_table, id=key(i), partner_id=key(partner_id), external_ref=str(i))
            for i in issues
        ],
    )
    listed = [str(i) for i in issues] + [str(issues[0])]  # a list written twice over
    row = _row(
        requests,
        id=key(request_id),
        partner_id=key(partner_id),
        dedupe_key=f"cluster:{request_id}",
        issue_ids=listed,
    )
    connection.execute(requests.insert(), [row])
    return request_id


def _members(connection: Connection) -> set[tuple[uuid.UUID, uuid.UUID]]:
    tables = MetaData()
    tables.reflect(connection, only=["microsoft_request_issues"])
    members = tables.tables["microsoft_request_issues"]
    found = connection.execute(select(members.c.request_id, members.c.issue_id))
    return {(uuid.UUID(str(r)), uuid.UUID(str(i))) for r, i in found}


def _listed(connection: Connection) -> dict[uuid.UUID, Any]:
    tables = MetaData()
    tables.reflect(connection, only=["microsoft_requests"])
    requests = tables.tables["microsoft_requests"]
    listed = connection.execute(select(requests.c.id, requests.c.issue_ids)).all()
    return {uuid.UUID(str(found)): issue_ids for found, issue_ids in listed}


async def _run(url: str, work: Callable[[Connection], Any]) -> Any:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def _request_issues_survive(url: str) -> None:
    issues = sorted(uuid.uuid4() for _ in range(3))
    await asyncio.to_thread(migrate.upgrade, url, "0010")
    request_id = await _run(url, lambda c: _write_listed_request(c, issues))

    await asyncio.to_thread(migrate.upgrade, url, "0011")
    assert await _run(url, _members) == {(request_id, i) for i in issues}

    await asyncio.to_thread(migrate.downgrade, url, "0010")
    assert await _run(url, _listed) == {request_id: [str(i) for i in issues]}


async def test_a_requests_issue_list_becomes_rows_and_back_on_sqlite(tmp_path: Path) -> None:
    await _request_issues_survive(f"sqlite+aiosqlite:///{tmp_path / 'data.db'}")


async def test_a_requests_issue_list_becomes_rows_and_back_on_postgresql(
    db_server: DatabaseServer,
) -> None:
    if db_server.is_sqlite:
        pytest.skip("no PostgreSQL server in this run")
    await _request_issues_survive(await db_server.empty_database())


def _outbox(connection: Connection) -> Table:
    tables = MetaData()
    tables.reflect(connection, only=["outbox"])
    return tables.tables["outbox"]


def _write_outbox(connection: Connection, sent: list[bool]) -> list[int]:
    """Outbox rows, in order, each sent or not (at 0011: ``sent_at``, or none), the first
    leased once."""
    outbox = _outbox(connection)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    written = [
        _row(
            outbox,
            id=n + 1,
            event_id=f"e{n}",
            sent_at=at if was_sent else None,
            claimed_until=at if n == 0 else None,
            attempts=1 if n == 0 else 0,
        )
        for n, was_sent in enumerate(sent)
    ]
    connection.execute(outbox.insert(), written)
    return [int(row["id"]) for row in written]


def _queued(connection: Connection) -> list[tuple[int, bool, int]]:
    """Each queued row: its id, whether it is leased, its attempts."""
    tables = MetaData()
    tables.reflect(connection, only=["outbox_pending"])
    pending = tables.tables["outbox_pending"]
    found = connection.execute(
        select(pending.c.id, pending.c.claimed_until.is_not(None), pending.c.attempts)
    )
    return sorted((int(i), bool(leased), int(attempts)) for i, leased, attempts in found)


def _unsent(connection: Connection) -> list[int]:
    outbox = _outbox(connection)
    found = connection.execute(select(outbox.c.id).where(outbox.c.sent_at.is_(None)))
    return sorted(int(row_id) for (row_id,) in found)


async def _unsent_rows_stay_queued(url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, url, "0011")
    old = await _run(url, lambda c: _write_outbox(c, [False, True, False]))

    await asyncio.to_thread(migrate.upgrade, url, "0012")
    assert await _run(url, _queued) == [(old[0], True, 1), (old[2], False, 0)]

    def write_leased(connection: Connection) -> None:
        outbox = _outbox(connection)
        at = datetime(2026, 12, 7, tzinfo=UTC)
        row = _row(outbox, id=100, event_id="new", claimed_until=at, attempts=1)
        connection.execute(outbox.insert(), [row])

    await _run(url, write_leased)
    queued = await _run(url, _queued)
    assert queued[-1] == (100, True, 1), "the trigger queues a new row with its writer's lease"

    await asyncio.to_thread(migrate.downgrade, url, "0011")
    assert await _run(url, _unsent) == [old[0], old[2], 100]


async def test_unsent_outbox_rows_are_queued_and_new_ones_too_and_back_on_sqlite(
    tmp_path: Path,
) -> None:
    await _unsent_rows_stay_queued(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")


async def test_unsent_outbox_rows_are_queued_and_new_ones_too_and_back_on_postgresql(
    db_server: DatabaseServer,
) -> None:
    if db_server.is_sqlite:
        pytest.skip("no PostgreSQL server in this run")
    await _unsent_rows_stay_queued(await db_server.empty_database())
