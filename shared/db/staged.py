"""Rows a transaction writes but never reads back: queued, then sent one statement per kind.

The outbox rows, timeline steps and inbox records of a consumer's batch are written and not
read again in the same transaction. Added to the ORM session, each costs an object, its state
tracking and its share of a flush; staged here, they cost a dictionary each and, when the unit
of work flushes, one compiled statement sent for all rows of a kind (see
:mod:`shared.db.direct`).

Staged rows are invisible to the session's queries until :func:`write_staged` (the unit of
work's ``flush()`` or ``commit()``). A rollback drops them; a commit that is not the unit of
work's, with rows still staged, is refused rather than losing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from shared.db.direct import Build, Direct, DirectStatements

STAGED = "staged"
DIRECT = "direct"


class StagingSession(Session):
    """The sync session behind every ``AsyncSession``: staged rows never outlive a transaction,
    and a commit does not go ahead without them."""

    def commit(self) -> None:
        if self.info.get(STAGED):
            raise RuntimeError("staged rows were not written: commit through the unit of work")
        super().commit()

    def rollback(self) -> None:
        self.info.pop(STAGED, None)
        super().rollback()

    def close(self) -> None:
        self.info.pop(STAGED, None)
        super().close()


def stage(
    session: AsyncSession,
    build: Build,
    values: Mapping[str, Any],
    *,
    before_others: bool = False,
) -> None:
    """Queue a write in the session's transaction; ``build`` is a module-level function.
    ``before_others``: rows that rows of other kinds refer to (by a foreign key), written
    before the kinds already staged."""
    staged: dict[Build, list[Mapping[str, Any]]] = session.info.setdefault(STAGED, {})
    if before_others and build not in staged:
        session.info[STAGED] = staged = {build: [], **staged}
    staged.setdefault(build, []).append(values)


async def write_staged(session: AsyncSession) -> None:
    """Send the staged rows on the session's connection, inside its transaction, in the order
    their kinds were first staged."""
    staged: dict[Build, list[Mapping[str, Any]]] | None = session.info.pop(STAGED, None)
    if not staged:
        return
    statements = await joined(session)
    for build, rows in staged.items():
        await statements.executemany(build, rows)


async def joined(session: AsyncSession) -> DirectStatements:
    """Direct statements on the session's connection, inside its transaction."""
    direct: Direct = session.info[DIRECT]
    return await DirectStatements.joined(direct, await session.connection())
