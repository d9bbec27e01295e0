"""The suite's own isolation: a PostgreSQL database a test released comes to the next one as
a fresh one would, with no rows, sequences from 1, and no session of the last test left in it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.models import OutboxMessage
from tests.support.database import DatabaseServer
from tests.support.factories import queued_updates, rows, scalar


async def test_a_released_database_comes_back_empty_with_its_sequences_restarted(
    db_server: DatabaseServer,
) -> None:
    if db_server.is_sqlite:
        pytest.skip("on SQLite every test gets a new copy of the template file")
    url = await db_server.new_database()
    engine = create_async_engine(url)
    lingering = create_async_engine(url)
    try:
        await queued_updates(engine, url, 3)
        # A session the last test left in a transaction, holding a lock on the outbox.
        idle = await lingering.connect()
        await idle.execute(select(func.count()).select_from(OutboxMessage))
        await engine.dispose()

        await db_server.release(url)
        await idle.invalidate()
        assert await db_server.new_database() == url

        assert await scalar(engine, "SELECT count(*) FROM partners") == 0
        await queued_updates(engine, url, 1)
        assert await rows(engine, "SELECT id FROM outbox") == [(1,)]
        assert await scalar(engine, "SELECT version_num FROM alembic_version")
    finally:
        await engine.dispose()
        await lingering.dispose()
        await db_server.release(url)
