"""The inbox is written before an event is handled: one statement per batch, and a copy that
another consumer is handling right now waits for that consumer's transaction."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import create_session_factory
from shared.db.uow import UnitOfWorkFactory
from shared.kafka import inbox


@pytest.fixture
def uows(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_session_factory(engine))


async def test_only_ids_the_inbox_did_not_hold_are_taken_and_a_rollback_keeps_none(
    uows: UnitOfWorkFactory,
) -> None:
    async with uows() as uow:
        assert await inbox.take(uow.session, "classifier", {"e1", "e2"}) == {"e1", "e2"}
        await uow.commit()
    async with uows() as uow:
        assert await inbox.take(uow.session, "classifier", {"e2", "e3"}) == {"e3"}
        # Another consumer's inbox is its own.
        assert await inbox.take(uow.session, "notifier", {"e2"}) == {"e2"}
        # Not committed: rolled back at the end of the unit of work.
    async with uows() as uow:
        assert await inbox.held(uow.session, "classifier", {"e1", "e2", "e3"}) == {"e1", "e2"}
        assert await inbox.held(uow.session, "notifier", {"e2"}) == set()
        assert await inbox.take(uow.session, "classifier", set()) == set()


@pytest.mark.parametrize("first_commits", [True, False], ids=["commits", "rolls-back"])
async def test_a_copy_being_handled_elsewhere_waits_for_that_transaction(
    uows: UnitOfWorkFactory, first_commits: bool
) -> None:
    async with uows() as first:
        assert await inbox.take(first.session, "notifier", {"e1"}) == {"e1"}

        async def second() -> set[str]:
            async with uows() as uow:
                taken = await inbox.take(uow.session, "notifier", {"e1", "e2"})
                await uow.commit()
                return taken

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.5)
        assert not racing.done(), "the second transaction did not wait for the first"
        if first_commits:
            await first.commit()
    assert await asyncio.wait_for(racing, timeout=30) == ({"e2"} if first_commits else {"e1", "e2"})
