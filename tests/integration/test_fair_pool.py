"""A task that gives a connection back and asks again at once (sqlalchemy/sqlalchemy#7679) goes
on only until a waiter has waited its patience: a busy writer does not keep a process's one
SQLite connection, or a full PostgreSQL pool, from its outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import literal, select
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql.expression import ClauseElement

from shared.db.direct import Direct
from shared.db.engine import create_engine
from shared.db.fair_pool import PATIENCE_S
from shared.settings import DatabaseSettings
from tests.support.database import DatabaseServer


@pytest.fixture
async def one_connection(db_server: DatabaseServer) -> AsyncIterator[Direct]:
    url = await db_server.new_database()
    engine = create_engine(DatabaseSettings(url=url, pool_timeout_s=PATIENCE_S + 2), pool_size=1)
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
    writing = asyncio.Event()
    loop = asyncio.get_running_loop()
    waited: list[float] = []

    async def writer() -> None:
        deadline = loop.time() + PATIENCE_S + 3  # past the pool's time-out
        while loop.time() < deadline:
            async with one_connection.work() as work:
                writing.set()
                await work.fetch(_one, {})
                await work.commit()

    async def relay() -> None:
        await writing.wait()
        asked = loop.time()
        async with one_connection.statements() as statements:
            waited.append(loop.time() - asked)
            await statements.fetch(_one, {})

    writes = asyncio.create_task(writer())
    try:
        await relay()
    except PoolTimeout:
        pytest.fail("the relay waited out the pool's time-out behind the writer")
    finally:
        await writes
    # Its patience, and the writer's transaction under way then.
    assert waited[0] < PATIENCE_S + 0.5, waited
