"""Deleting old rows in short transactions, so that a long backlog never holds one open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Column, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.uow import UnitOfWorkFactory

# Rows deleted per transaction.
SWEEP_CHUNK = 5000


async def sweep(
    uows: UnitOfWorkFactory,
    delete_some: Callable[[AsyncSession, int], Awaitable[int]],
    *,
    chunk: int = SWEEP_CHUNK,
    between: Callable[[], None] | None = None,
) -> int:
    """Call ``delete_some(session, chunk)``, which deletes at most ``chunk`` rows and says how
    many, each time in a unit of work of its own, until it deletes fewer; how many went in all.
    ``between`` runs before each transaction (a liveness beat, say)."""
    deleted = 0
    while True:
        if between is not None:
            between()
        async with uows() as uow:
            gone = await delete_some(uow.session, chunk)
            await uow.commit()
        deleted += gone
        if gone < chunk:
            return deleted


async def delete_first(
    session: AsyncSession, key: Sequence[Column[Any]], *where: Any, limit: int
) -> int:
    """Delete at most ``limit`` rows of ``key``'s table matching ``where``, chosen by their
    ``key`` columns (its primary key), in the session's transaction; how many went."""
    table = key[0].table
    chosen = select(*key).where(*where).limit(limit)
    rows = key[0] if len(key) == 1 else tuple_(*key)
    result = await session.execute(delete(table).where(rows.in_(chosen)))
    return int(getattr(result, "rowcount", 0) or 0)
