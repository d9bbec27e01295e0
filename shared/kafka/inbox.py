"""A consumer's inbox: which event ids it has already taken care of."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import String, bindparam, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of, utcnow
from shared.db.listed import listed
from shared.db.models import InboxRecord
from shared.db.staged import joined
from shared.db.sweep import delete_first
from shared.db.upsert import insert_ignoring


async def held(session: AsyncSession, consumer: str, event_ids: set[str]) -> set[str]:
    """Which of ``event_ids`` the inbox of ``consumer`` already holds."""
    found = await session.scalars(
        select(InboxRecord.event_id).where(
            InboxRecord.consumer == consumer, InboxRecord.event_id.in_(event_ids)
        )
    )
    return set(found)


async def take(session: AsyncSession, consumer: str, event_ids: Collection[str]) -> set[str]:
    """Record ``event_ids`` in the inbox of ``consumer``, in the session's transaction, in
    one statement; return the ones that were not there yet: this transaction is the one to
    handle them. An id another transaction has just recorded waits for it: taken if that one
    rolls back, not if it commits."""
    if not event_ids:
        return set()
    statements = await joined(session)
    rows = await statements.fetch(
        _take, {"consumer": consumer, "ids": sorted(event_ids), "now": utcnow()}
    )
    return {event_id for (event_id,) in rows}


def _take(dialect: str) -> ClauseElement:
    inbox = table_of(InboxRecord)
    # The ids travel as one parameter, so the statement is the same for any batch size; sorted,
    # so that two transactions recording overlapping batches lock them in the same order.
    ids = listed("ids", String, dialect)
    source = select(
        bindparam("consumer", type_=inbox.c.consumer.type),
        ids.c.value,
        bindparam("now", type_=inbox.c.processed_at.type),
    ).where(true())  # SQLite: an INSERT … SELECT with ON CONFLICT needs a WHERE
    return (
        insert_ignoring(dialect, inbox, ("consumer", "event_id"))
        .from_select(["consumer", "event_id", "processed_at"], source)
        .returning(inbox.c.event_id)
    )


async def forget(
    session: AsyncSession, consumers: Collection[str], *, before: datetime, limit: int
) -> int:
    """Delete up to ``limit`` inbox records of ``consumers`` handled before ``before``, in the
    session's transaction; how many went. A bounded statement, so that a long backlog is
    forgotten in short transactions."""
    inbox = table_of(InboxRecord)
    return await delete_first(
        session,
        (inbox.c.consumer, inbox.c.event_id),
        inbox.c.consumer.in_(consumers),
        inbox.c.processed_at < before,
        limit=limit,
    )
