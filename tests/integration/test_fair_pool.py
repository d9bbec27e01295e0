"""A connection given back goes to the task that has waited longest, even when the task giving
it back asks again at once (sqlalchemy/sqlalchemy#7679): a busy writer does not keep a
process's one SQLite connection, or a full PostgreSQL pool, from its outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import literal, select
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql.expression import ClauseElement

from shared.db.direct import Direct
from shared.db.engine import create_engine
from shared.settings import DatabaseSettings
from tests.support.database import DatabaseServer


@pytest.fixture
async def one_connection(db_server: DatabaseServer) -> AsyncIterator[Direct]:
    url = await db_server.new_database()
    engine = create_engine(DatabaseSettings(url=url, pool_timeout_s=1.0), pool_size=1)
    try:
        yield Direct(engine)
    finally:
        await engine.dispose()
        await db_server.release(url)


def _one(dialect: str) -> ClauseElement:
    return select(literal(1))


async def test_a_waiter_gets_the_connection_from_a_writer_that_asks_again_at_once(
    one_connection: Direct,
) -> None:
    """The writer commits and takes the connection again without yielding to the event loop
    in between, as the intake's accept writer does with its next batch ready."""
    turns: list[str] = []
    writing = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def writer() -> None:
        deadline = loop.time() + 2.5  # more than two of the pool's time-outs
        while loop.time() < deadline:
            async with one_connection.work() as work:
                writing.set()
                await work.fetch(_one, {})
                await work.commit()
            turns.append("writer")

    async def relay() -> None:
        await writing.wait()
        async with one_connection.statements() as statements:
            await statements.fetch(_one, {})
        turns.append("relay")

    writes = asyncio.create_task(writer())
    try:
        await relay()
    except PoolTimeout:
        pytest.fail("the relay waited out the pool's time-out behind the writer")
    finally:
        await writes
    assert turns.index("relay") <= 1, turns[:5]
