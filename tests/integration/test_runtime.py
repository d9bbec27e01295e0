"""What every service process holds while it runs (services.runtime.Runtime).

A service that is stopped (SIGTERM, a rolling deploy) stops its workers first and its outbox
relay last: what a worker commits on its way out, such as the last batch a consumer was handling,
is published before the process ends instead of waiting for the next process's relay."""

from __future__ import annotations

import asyncio

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import ClauseElement

from services.runtime import Runtime
from shared.kafka.outbox import enqueue
from tests.integration.conftest import intake_settings
from tests.support.broker import event_ids, read_topic
from tests.support.factories import PUBLISHED, eventually, rows, seed_partner, updated_event


async def test_what_workers_commit_while_stopping_is_published_before_the_process_ends(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    settings = intake_settings(database_url, bootstrap_servers, topic_prefix)
    late: list[str] = []

    async def finishing_its_batch(stop: asyncio.Event) -> None:
        await stop.wait()
        await asyncio.sleep(0.3)  # the batch in hand when the stop came
        async with runtime.uow_factory() as uow:
            late.append(enqueue(uow.session, updated_event(partner.id), service="test"))
            await uow.commit()

    async with Runtime(settings, service="test") as runtime:
        async with runtime.uow_factory() as uow:
            first = enqueue(uow.session, updated_event(partner.id), service="test")
            await uow.commit()
        await eventually(lambda: _sent(engine, first), message="the relay never published")
        runtime.spawn("finishing", finishing_its_batch)

    assert late
    sent = await rows(engine, f"SELECT event_id FROM outbox WHERE {PUBLISHED}")
    assert sorted(event_id for (event_id,) in sent) == sorted([first, *late])
    records = await read_topic(bootstrap_servers, f"{topic_prefix}issues.updated", expected=2)
    assert sorted(event_ids(records)) == sorted([first, *late])


async def _sent(engine: AsyncEngine, event_id: str) -> bool:
    sql = f"SELECT 1 FROM outbox WHERE event_id = :event_id AND {PUBLISHED}"
    return bool(await rows(engine, sql, event_id=event_id))


async def test_a_service_shares_its_one_connection_with_its_relay_on_sqlite_only(
    database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    settings = intake_settings(database_url, bootstrap_servers, topic_prefix)
    async with Runtime(settings, service="test") as runtime:
        shared = runtime._relay_engine is runtime.engine
    assert shared == database_url.startswith("sqlite")


async def test_lone_reads_have_their_own_connections_on_a_sqlite_file_only(
    database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """On a SQLite file the intake's key checks and customer look-ups read without a turn at
    the write gate (see test_sqlite_gate); elsewhere the service's engine reads."""
    settings = intake_settings(database_url, bootstrap_servers, topic_prefix)
    async with Runtime(settings, service="test") as runtime:
        own = runtime.reads is not runtime.direct
        if own:
            async with runtime.reads.statements() as statements:
                assert await statements.fetch(_one, {}) == [(1,)]
    assert own == database_url.startswith("sqlite")


def _one(dialect: str) -> ClauseElement:
    return select(literal(1))
