"""Correlation keys: taken in one order, before a batch's issues, and once per transaction, so
the classifier's and the notifier's batches never wait for each other in a cycle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.classifier.handler import IssueClassifier
from services.classifier.rulebook import RuleBook
from services.notifier.handler import preload_batch
from shared.correlation_lock import Key, lock_correlation_key, lock_correlation_keys
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import ClusterSignal
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope, decode, encode
from shared.events.models import IssueEvent
from shared.settings import ClassifierSettings
from shared.vocabulary import Outcome
from tests.support.factories import (
    accepted_issues,
    classified_event,
    eventually,
    open_cluster,
    seed_partner,
)

Preload = Callable[[UnitOfWork, list[Envelope]], Awaitable[object]]
_INDEX_SCANS = ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan")


@pytest.mark.usefixtures("postgresql_only")
async def test_keys_are_taken_in_one_order_whatever_order_a_batch_asks_for_them(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    first, second = (partner.id, "exchange online", "a"), (partner.id, "exchange online", "b")
    await _batch_waits_holding_nothing(engine, [second, first])


@pytest.mark.usefixtures("postgresql_only")
async def test_keys_written_before_are_locked_in_one_order_too(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    keys = [(partner.id, "exchange online", region) for region in ("Ä-north", "b", "a", "B")]
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as uow:
        for key in keys:  # the rows there already, stored in no particular order
            await lock_correlation_key(uow.session, *key)
            await uow.commit()
    # Whatever plan PostgreSQL picks: a scan of the table meets them as stored.
    await _batch_waits_holding_nothing(engine, reversed(keys), table_scan=True)


async def _batch_waits_holding_nothing(
    engine: AsyncEngine, asked: Iterable[Key], *, table_scan: bool = False
) -> None:
    """Another transaction holds the first of the keys (in sort order); a batch asking for
    them in the order ``asked`` waits for it holding none of the others, so that the other
    transaction taking the last one closes no cycle (PostgreSQL would abort one of the two as
    deadlocked). ``table_scan``: the batch's plans may not use an index."""
    keys = list(asked)
    first, last = min(keys), max(keys)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as holder:
        await lock_correlation_key(holder.session, *first)

        async def asking() -> None:
            async with uows() as batch:
                if table_scan:
                    for setting in (
                        "enable_indexscan",
                        "enable_bitmapscan",
                        "enable_indexonlyscan",
                    ):
                        await batch.session.execute(text(f"SET LOCAL {setting} = off"))
                await lock_correlation_keys(batch.session, keys)
                await batch.commit()

        waiting = asyncio.create_task(asking())
        await eventually(lambda: _waits_for_a_lock(engine), timeout=10)
        await asyncio.wait_for(lock_correlation_key(holder.session, *last), timeout=5)
        assert not waiting.done()
        await holder.commit()
    await asyncio.wait_for(waiting, timeout=10)


async def test_a_key_the_transaction_holds_is_not_locked_again(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    one, other = (partner.id, "teams", "westeurope"), (partner.id, "teams", "eastus")
    uows = UnitOfWorkFactory(create_session_factory(engine))
    with _StatementsOnKeys(engine) as sent:
        async with uows() as uow:
            await lock_correlation_key(uow.session, *one)
            await lock_correlation_key(uow.session, *one)
            await lock_correlation_keys(uow.session, [other, one])
            await uow.commit()
        assert len(sent) == 4  # each key once: its row inserted if absent, then locked
        async with uows() as uow:
            await lock_correlation_key(uow.session, *one)  # a new transaction holds nothing
        assert len(sent) == 6
        many = [(partner.id, "teams", f"region-{n}") for n in range(6)]
        async with uows() as uow:
            await lock_correlation_keys(uow.session, [*many, one])
            await uow.commit()
        assert len(sent) == 8, "a batch's keys: written where absent, then locked, together"


@pytest.mark.usefixtures("postgresql_only")
async def test_a_classifier_batch_takes_its_reports_keys_before_it_locks_its_issues(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    events = [
        e.model_copy(update={"tenant_id": uuid.uuid4(), "region": region})
        for e, region in zip(
            await accepted_issues(engine, partner.id, ["r-1", "r-2", "r-3"]),
            ("West Europe", "eastus", None),
            strict=True,
        )
    ]
    classifier = IssueClassifier(RuleBook.load(None, None), settings=ClassifierSettings())
    keys = {
        (partner.id, "exchange online", "west europe"),
        (partner.id, "exchange online", "eastus"),
    }
    await _keys_taken_while_an_issue_is_locked(
        engine, classifier.preload, events, keys, events[0].issue_id
    )


@pytest.mark.usefixtures("postgresql_only")
async def test_a_notifier_batch_takes_the_keys_of_clusters_forming_before_it_locks_its_issues(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    received = await accepted_issues(engine, partner.id, ["n-1", "n-2", "n-3"])
    forming = [(partner.id, "exchange online", "westeurope"), (partner.id, "teams", "eastus")]
    formed = (partner.id, "sharepoint online", "northeurope")
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as uow:
        uow.session.add(open_cluster("cl_formed", formed))
        await uow.session.flush()
        for event_, (_, service_key, region_key), cluster_id in zip(
            received, [*forming, formed], [None, None, "cl_formed"], strict=True
        ):
            uow.session.add(
                ClusterSignal(
                    issue_id=event_.issue_id,
                    partner_id=partner.id,
                    tenant_key=str(uuid.uuid4()),
                    service_key=service_key,
                    region_key=region_key,
                    observed_at=utcnow(),
                    cluster_id=cluster_id,
                )
            )
        await uow.commit()
    events = [
        classified_event(e.issue_id, partner.id, Outcome.ESCALATED_TO_MICROSOFT) for e in received
    ]
    # The cluster that formed is not waited for: its members' request is the cluster's.
    await _keys_taken_while_an_issue_is_locked(
        engine, preload_batch, events, set(forming), received[-1].issue_id, not_taken={formed}
    )


async def _keys_taken_while_an_issue_is_locked(
    engine: AsyncEngine,
    preload: Preload,
    events: list[Any],
    keys: set[Key],
    locked_issue: uuid.UUID,
    *,
    not_taken: frozenset[Key] | set[Key] = frozenset(),
) -> None:
    """Another transaction holds ``locked_issue``'s row; ``preload`` of ``events`` waits for it
    holding every one of ``keys`` already, and none of ``not_taken``. (The keys' rows are
    written first, so that another transaction can see them to find them locked.)"""
    uows = UnitOfWorkFactory(create_session_factory(engine))
    async with uows() as uow:
        await lock_correlation_keys(uow.session, keys | set(not_taken))
        await uow.commit()
    envelopes = [_envelope(e) for e in events]
    async with engine.connect() as other:
        await other.execute(
            text("SELECT id FROM issues WHERE id = :id FOR UPDATE"), {"id": locked_issue}
        )

        async def preloading() -> None:
            async with uows() as uow:
                await preload(uow, envelopes)

        batch = asyncio.create_task(preloading())
        try:
            await eventually(lambda: _all_held(engine, keys), timeout=10)
            assert not batch.done()
            for key in not_taken:
                assert not await _held_elsewhere(engine, key), f"{key} was taken"
        finally:
            await other.rollback()
        await asyncio.wait_for(batch, timeout=10)


async def _all_held(engine: AsyncEngine, keys: set[Key]) -> bool:
    return all([await _held_elsewhere(engine, key) for key in keys])


async def _held_elsewhere(engine: AsyncEngine, key: Key) -> bool:
    """Whether another transaction holds ``key``'s row (a lock that is not free at once)."""
    async with engine.connect() as probe:
        try:
            found = await probe.execute(
                text(
                    "SELECT 1 FROM correlation_keys WHERE partner_id = :p AND service_key = :s "
                    "AND region_key = :r FOR UPDATE NOWAIT"
                ),
                {"p": key[0], "s": key[1], "r": key[2]},
            )
            assert found.first() is not None, f"no row for {key}"
            return False
        except DBAPIError as exc:
            if "could not obtain lock" not in str(exc):
                raise
            return True
        finally:
            await probe.rollback()


async def _waits_for_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as probe:
        waiting = await probe.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


def _envelope(data: IssueEvent) -> Envelope:
    _, value, headers = encode(data, service="test")
    return decode(value, headers)


class _StatementsOnKeys:
    """The statements sent about ``correlation_keys`` while the block runs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.sent: list[str] = []

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "correlation_keys" in statement:
            self.sent.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self.sent

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)
