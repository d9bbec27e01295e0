"""The unit of work: the one place that commits."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import staged
from shared.db.staged import write_staged


class UnitOfWork:
    """One transaction. Rolls back unless ``commit()`` was called; nothing else commits.

    Callbacks given with :meth:`after_commit` (or to its session with
    :func:`shared.db.staged.after_commit`) run after a successful commit, never inside the
    transaction, and a rolled-back one forgets them.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside 'async with'")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._factory()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            await session.rollback()
        finally:
            await session.close()
            self._session = None

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this transaction has committed, and never if it does not:
        for effects outside the database, such as a counter of what was written."""
        staged.after_commit(self.session, callback)

    async def flush(self) -> None:
        """Send what is pending, ORM changes and then staged rows, so that this transaction's
        own queries see it."""
        await self.session.flush()
        await write_staged(self.session)

    async def commit(self) -> None:
        await self.flush()
        await self.session.commit()
        for callback in staged.committed(self.session):
            callback()


class UnitOfWorkFactory:
    """Makes units of work sharing one session factory."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)
