"""A consumer's inbox: which event ids it has already taken care of."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of
from shared.db.direct import bound
from shared.db.models import InboxRecord
from shared.db.staged import stage


async def held(session: AsyncSession, consumer: str, event_ids: set[str]) -> set[str]:
    """Which of ``event_ids`` the inbox of ``consumer`` already holds."""
    found = await session.scalars(
        select(InboxRecord.event_id).where(
            InboxRecord.consumer == consumer, InboxRecord.event_id.in_(event_ids)
        )
    )
    return set(found)


def record(session: AsyncSession, consumer: str, event_id: str) -> None:
    """Note ``event_id`` as taken care of, when the session's unit of work commits (staged: a
    second record of the same id fails that commit)."""
    stage(session, _insert, {"consumer": consumer, "event_id": event_id})


def _insert(dialect: str) -> ClauseElement:
    return insert(table_of(InboxRecord)).values(**bound("consumer", "event_id"))
