"""The suite's own isolation: a PostgreSQL database a test released comes to the next one as
a fresh one would, with no rows, sequences from 1, and no session of the last test left in it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.models import OutboxMessage
from tests.support.database import DatabaseServer


async def test_a_released_database_comes_back_empty_with_its_sequences_restarted(
    db_server: DatabaseServer,
) -> None:
    if db_server.is_sqlite:
        pytest.skip("on SQLite every test gets a new copy of the template file")
    url = await db_server.new_database()
    engine = create_async_engine(url)
    lingering = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for n in range(3):
                await connection.execute(insert(OutboxMessage).values(_row(n)))
        # A session the last test left in a transaction, holding a lock on the outbox.
        idle = await lingering.connect()
        await idle.execute(select(func.count()).select_from(OutboxMessage))
        await engine.dispose()

        await db_server.release(url)
        await idle.invalidate()
        assert await db_server.new_database() == url

        async with engine.begin() as connection:
            assert await connection.scalar(select(func.count()).select_from(OutboxMessage)) == 0
            added = await connection.execute(
                insert(OutboxMessage).values(_row(9)).returning(OutboxMessage.id)
            )
            assert added.scalar_one() == 1
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            assert version
    finally:
        await engine.dispose()
        await lingering.dispose()
        await db_server.release(url)


def _row(n: int) -> dict[str, object]:
    return {
        "event_id": f"e{n}",
        "event_type": "t",
        "aggregate_id": "a",
        "topic": "x",
        "key": "k",
        "value": b"{}",
    }
