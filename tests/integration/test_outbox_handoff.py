"""Outbox rows a process writes are leased to its own relay and handed to it once committed.

A handed row is published without being claimed from the table: the tests show that by the
row's lease, which no claim can take before it ends, and by the relay publishing it anyway.
On SQLite the relay leases nothing (each row's id would cost a call of its own under the
writer's lock): rows are written unleased and claimed, as a later test shows, and the run loop
marks what it published with its next claim, on the same connection (the last tests).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.accept_writes import accept_rows
from services.intake.accepts import Accepts
from shared.db.base import utcnow
from shared.db.direct import Direct
from shared.kafka.outbox import BrokerUnavailable, OutboxRelay, enqueue
from tests.support.broker import event_ids, read_topic, refuse_batches
from tests.support.factories import (
    eventually,
    outbox_states,
    received_event,
    relay_sessions,
    rows,
    running_relay,
    seed_partner,
    updated_event,
)


async def _committed(
    engine: AsyncEngine, database_url: str, relay: OutboxRelay, count: int = 1
) -> list[str]:
    """``count`` events of a new partner enqueued in a session that carries ``relay``, then
    committed: their event ids."""
    partner = await seed_partner(database_url)
    async with relay_sessions(engine, relay)() as uow:
        ids = [
            enqueue(uow.session, updated_event(partner.id), service="test") for _ in range(count)
        ]
        await uow.commit()
    return ids


async def _published(bootstrap_servers: str, topic: str, expected: int) -> list[str]:
    records = await read_topic(bootstrap_servers, topic, expected=expected)
    return sorted(event_ids(records))


async def _broker_away(relay: OutboxRelay) -> None:
    """From now on the relay's producer cannot start, as when its broker is away."""
    await relay._close_producer()

    async def unreachable() -> AIOKafkaProducer:
        raise KafkaConnectionError("broker away")

    relay._ensure_producer = unreachable  # type: ignore[method-assign]


async def _stop(relay: OutboxRelay) -> None:
    """Run the relay with its stop already asked for: only what it does on the way out."""
    stop = asyncio.Event()
    stop.set()
    await relay.run(stop)


@pytest.mark.usefixtures("leasing")
async def test_committed_rows_are_handed_to_the_relay_and_published_without_a_claim(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    partner = await seed_partner(database_url)
    uows = relay_sessions(engine, relay)
    try:
        async with uows() as uow:
            enqueue(uow.session, updated_event(partner.id), service="test")
            await uow.flush()  # written, then rolled back: never handed
        async with uows() as uow:
            ids = [enqueue(uow.session, updated_event(partner.id), service="test") for _ in "abc"]
            assert await outbox_states(engine) == {}  # nothing handed before the commit
            await uow.commit()
        # Written leased: no claim can take them for the next 30 s.
        assert await outbox_states(engine) == {i: (False, True, 1) for i in ids}
        assert await relay._claim() == []

        assert await relay.relay_once() == 3
        assert await relay.relay_once() == 0
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {i: (True, False, None) for i in ids}
    assert await _published(bootstrap_servers, f"{topic_prefix}issues.updated", 3) == sorted(ids)


async def test_a_relay_without_its_broker_takes_no_rows_in_hand_and_is_woken_to_claim_them(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    relay.broker_available = False
    try:
        [event_id] = await _committed(engine, database_url, relay)
        assert await outbox_states(engine) == {event_id: (False, False, 0)}
        assert relay.wake.is_set()
        assert relay._claim_due

        assert await relay.relay_once() == 1
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {event_id: (True, False, None)}
    assert relay.broker_available


@pytest.mark.usefixtures("leasing")
async def test_handed_rows_the_broker_refuses_are_released_and_claimed_next_pass(
    engine: AsyncEngine,
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    ids = await _committed(engine, database_url, relay, 2)
    producer = await relay._ensure_producer()
    try:
        refuse_batches(monkeypatch, producer)
        with pytest.raises(BrokerUnavailable):
            await relay.relay_once()
        assert await outbox_states(engine) == {i: (False, False, 1) for i in ids}
        monkeypatch.undo()
        assert await relay.relay_once() == 2
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {i: (True, False, None) for i in ids}


@pytest.mark.usefixtures("leasing")
async def test_rows_in_hand_are_released_when_the_producer_cannot_start(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """Not left leased until the lease ends: the next pass after the broker is back takes
    them from the table."""
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    [event_id] = await _committed(engine, database_url, relay)
    start = relay._ensure_producer
    await _broker_away(relay)
    with pytest.raises(BrokerUnavailable):
        await relay.relay_once()
    assert await outbox_states(engine) == {event_id: (False, False, 1)}
    relay._ensure_producer = start  # type: ignore[method-assign]
    try:
        assert await relay.relay_once() == 1
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {event_id: (True, False, None)}


@pytest.mark.usefixtures("leasing")
async def test_a_row_held_in_hand_past_half_its_lease_is_released_not_published(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """A relay held up that long may lose the row to another relay's claim once the lease ends:
    it gives the row back to the table instead, and claims it like any other."""
    relay = await running_relay(engine, bootstrap_servers, topic_prefix, lease_s=30.0)
    [event_id] = await _committed(engine, database_url, relay)
    [held] = relay._handed
    relay._handed[0] = held._replace(lease=utcnow() + timedelta(seconds=14))
    try:
        assert await relay.relay_once() == 0
        assert await outbox_states(engine) == {event_id: (False, False, 1)}
        assert await relay.relay_once() == 1
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {event_id: (True, False, None)}


@pytest.mark.usefixtures("leasing")
async def test_a_relay_that_stops_publishes_the_rows_in_its_hand_first(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    ids = await _committed(engine, database_url, relay, 2)
    await _stop(relay)
    assert await outbox_states(engine) == {i: (True, False, None) for i in ids}
    assert await _published(bootstrap_servers, f"{topic_prefix}issues.updated", 2) == sorted(ids)
    assert relay.lease() is None  # and no more are leased to it


@pytest.mark.usefixtures("leasing")
async def test_a_relay_that_stops_gives_back_the_rows_it_cannot_publish(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    ids = await _committed(engine, database_url, relay, 2)
    await _broker_away(relay)
    await _stop(relay)
    # Unleased: the next relay claims them at once, not when the lease would have ended.
    assert await outbox_states(engine) == {i: (False, False, 1) for i in ids}


@pytest.mark.usefixtures("leasing")
async def test_accepts_written_together_hand_their_stored_rows_to_the_relay(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """Only the accepts that were stored are handed, each with its own row's id."""
    woken: list[None] = []
    direct = Direct(engine, on_commit=lambda: woken.append(None))
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    partner = await seed_partner(database_url)
    old = received_event(partner.id, "T-old")
    await Accepts(direct, max_batch=1).store(accept_rows(old, service="intake", detail="a"))
    assert len(woken) == 1  # no relay given: written unleased, the relay woken
    batch = [
        received_event(partner.id, "T-a"),
        received_event(partner.id, "T-old"),
        received_event(partner.id, "T-b"),
        received_event(partner.id, "T-a"),
    ]
    accepts = Accepts(direct, max_batch=10, relay=relay)
    try:
        stored = await asyncio.gather(
            *(accepts.store(accept_rows(e, service="intake", detail="b")) for e in batch)
        )
        await accepts.aclose()
        assert stored == [True, False, True, False]
        assert len(woken) == 1
        handed = {row.key: row.id for row, _ in relay._handed}
        assert set(handed) == {str(batch[0].issue_id), str(batch[2].issue_id)}
        assert dict(await rows(engine, "SELECT key, id FROM outbox WHERE attempts = 1")) == handed
        assert await relay.relay_once() == 3  # the unleased row is claimed with them
    finally:
        await relay._close_producer()
    published = await _published(bootstrap_servers, f"{topic_prefix}issues.received", 3)
    assert len(published) == 3
    assert all(sent and not leased for sent, leased, _ in (await outbox_states(engine)).values())


async def test_on_sqlite_rows_are_written_unleased_and_the_relay_woken_to_claim_them(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's rows are handed over")
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    try:
        [event_id] = await _committed(engine, database_url, relay)
        assert relay.lease() is None
        assert await outbox_states(engine) == {event_id: (False, False, 0)}
        assert relay._claim_due
        assert await relay.relay_once() == 1
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {event_id: (True, False, None)}


def _checkouts(engine: AsyncEngine) -> list[None]:
    """One entry per connection the engine hands out from now on."""
    seen: list[None] = []
    event.listen(engine.sync_engine, "checkout", lambda *_: seen.append(None))
    return seen


async def test_marks_deferred_to_the_next_claim_are_made_on_its_connection(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """As the run loop does on SQLite: the claim and the marking take one turn at the write
    gate. Until then the published rows stay leased, so no claim takes them again."""
    relay = await running_relay(engine, bootstrap_servers, topic_prefix)
    relay.broker_available = False  # rows written unleased, claimed from the table
    try:
        first = await _committed(engine, database_url, relay, 2)
        assert await relay.relay_once(defer_marks=True) == 2
        assert await outbox_states(engine) == {i: (False, True, 1) for i in first}

        relay.broker_available = False
        second = await _committed(engine, database_url, relay)
        checkouts = _checkouts(engine)
        assert len(await relay._next_batch()) == 1
        assert len(checkouts) == 1
        states = await outbox_states(engine)
        assert {i: states[i] for i in first} == {i: (True, False, None) for i in first}
        assert states[second[0]] == (False, True, 1)  # claimed, not yet published
    finally:
        await relay._close_producer()
    assert await _published(bootstrap_servers, f"{topic_prefix}issues.updated", 2) == sorted(first)


async def test_deferred_marks_are_made_without_a_claim_when_no_claim_is_due(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix, poll_interval_s=3600)
    relay.broker_available = False
    try:
        ids = await _committed(engine, database_url, relay, 2)
        assert await relay.relay_once(defer_marks=True) == 2
        assert not relay._claim_due
        assert await relay._next_batch() == []
    finally:
        await relay._close_producer()
    assert await outbox_states(engine) == {i: (True, False, None) for i in ids}


async def test_a_relay_that_stops_makes_its_deferred_marks(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    relay = await running_relay(engine, bootstrap_servers, topic_prefix, poll_interval_s=3600)
    relay.broker_available = False
    ids = await _committed(engine, database_url, relay, 2)
    assert await relay.relay_once(defer_marks=True) == 2
    await _stop(relay)
    assert await outbox_states(engine) == {i: (True, False, None) for i in ids}


async def test_the_run_loop_defers_its_marks_on_sqlite_only(
    engine: AsyncEngine, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    """Where rows are claimed from the table (SQLite) the loop leaves what it published leased
    for its next claim to mark; where they are handed over (PostgreSQL) it marks them at once."""
    relay = await running_relay(engine, bootstrap_servers, topic_prefix, poll_interval_s=3600)
    relay.broker_available = relay._running = False  # as before its loop starts
    ids = await _committed(engine, database_url, relay, 2)
    assert relay._claim_due
    relay.wake.clear()  # one pass claims them, and the next waits to be woken
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        assert await _published(bootstrap_servers, f"{topic_prefix}issues.updated", 2) == sorted(
            ids
        )
        marked = not database_url.startswith("sqlite")
        expected = {i: (marked, not marked, None if marked else 1) for i in ids}
        states: dict[str, tuple[bool, bool, int | None]] = {}

        async def settled() -> bool:
            states.clear()
            states.update(await outbox_states(engine))
            return states == expected

        # The marks follow the broker's acknowledgement, which the reader above may see first.
        await eventually(
            settled, timeout=10, interval=0.05, message=lambda: f"{states} != {expected}"
        )
        if not marked:
            # Still leased a moment later: the loop waits to be woken for its next claim.
            await asyncio.sleep(0.3)
            assert await outbox_states(engine) == expected
    finally:
        stop.set()
        relay.wake.set()
        await asyncio.wait_for(running, 30)
    assert await outbox_states(engine) == {i: (True, False, None) for i in ids}
