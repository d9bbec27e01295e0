"""Rows a transaction writes but never reads back: queued, then sent one statement per kind.

The outbox rows, timeline steps and inbox records of a consumer's batch are written and not
read again in the same transaction. Added to the ORM session, each costs an object, its state
tracking and its share of a flush; staged here, they cost a dictionary each and, when the unit
of work flushes, one compiled statement sent for all rows of a kind (see
:mod:`shared.db.direct`).

Staged rows are invisible to the session's queries until :func:`write_staged` (the unit of
work's ``flush()`` or ``commit()``). A rollback drops them; a commit that is not the unit of
work's, with rows still staged, is refused rather than losing them.

A kind can be staged with a ``returned`` callback: its statement returns one row per staged row
(``RETURNING``), and the callback gets both once they are written. What it arranges for after
the commit (:func:`after_commit`) happens only if the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from shared.db.direct import Build, Direct, DirectStatements

STAGED = "staged"
RETURNED = "staged_returned"
AFTER_COMMIT = "after_commit"
DIRECT = "direct"
# Gets the session, the rows of one kind as staged and what each returned, in the same order.
Returned = Callable[[AsyncSession, Sequence[Mapping[str, Any]], list[tuple[Any, ...]]], None]


class StagingSession(Session):
    """The sync session behind every ``AsyncSession``: staged rows never outlive a transaction,
    and a commit does not go ahead without them."""

    def commit(self) -> None:
        if self.info.get(STAGED):
            raise RuntimeError("staged rows were not written: commit through the unit of work")
        super().commit()

    def rollback(self) -> None:
        _forget(self.info)
        super().rollback()

    def close(self) -> None:
        _forget(self.info)
        super().close()


def _forget(info: dict[Any, Any]) -> None:
    for key in (STAGED, RETURNED, AFTER_COMMIT):
        info.pop(key, None)


def stage(
    session: AsyncSession,
    build: Build,
    values: Mapping[str, Any],
    *,
    before_others: bool = False,
    returned: Returned | None = None,
) -> None:
    """Queue a write in the session's transaction; ``build`` is a module-level function.
    ``before_others``: rows that rows of other kinds refer to (by a foreign key), written
    before the kinds already staged. ``returned``: ``build`` returns a row for each row, and
    this gets them when they are written (the same for every row of the kind)."""
    staged: dict[Build, list[Mapping[str, Any]]] = session.info.setdefault(STAGED, {})
    if before_others and build not in staged:
        session.info[STAGED] = staged = {build: [], **staged}
    staged.setdefault(build, []).append(values)
    if returned is not None:
        session.info.setdefault(RETURNED, {})[build] = returned


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed through the unit of work,
    and never if it rolls back."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def committed(session: AsyncSession) -> list[Callable[[], None]]:
    """The callbacks :func:`after_commit` gathered, taken from the session: the unit of work
    runs them once its commit succeeded."""
    callbacks: list[Callable[[], None]] = session.info.pop(AFTER_COMMIT, [])
    return callbacks


async def write_staged(session: AsyncSession) -> None:
    """Send the staged rows on the session's connection, inside its transaction, in the order
    their kinds were first staged."""
    staged: dict[Build, list[Mapping[str, Any]]] | None = session.info.pop(STAGED, None)
    returning: dict[Build, Returned] = session.info.pop(RETURNED, {})
    if not staged:
        return
    statements = await joined(session)
    for build, rows in staged.items():
        hook = returning.get(build)
        if hook is None:
            await statements.executemany(build, rows)
        else:
            hook(session, rows, await statements.fetchmany(build, rows))


async def joined(session: AsyncSession) -> DirectStatements:
    """Direct statements on the session's connection, inside its transaction."""
    direct: Direct = session.info[DIRECT]
    return await DirectStatements.joined(direct, await session.connection())
