"""Reading a consumer's inbox: which event ids it has already taken care of."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import InboxRecord


async def held(session: AsyncSession, consumer: str, event_ids: set[str]) -> set[str]:
    """Which of ``event_ids`` the inbox of ``consumer`` already holds."""
    found = await session.scalars(
        select(InboxRecord.event_id).where(
            InboxRecord.consumer == consumer, InboxRecord.event_id.in_(event_ids)
        )
    )
    return set(found)
