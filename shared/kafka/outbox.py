"""Transactional outbox: ``enqueue`` inside the caller's transaction, ``OutboxRelay`` to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from sqlalchemy import (
    Integer,
    and_,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement, ColumnElement
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from shared.db.base import table_of, utcnow
from shared.db.columnar import deleted, inserted, updated
from shared.db.direct import Build, Direct, DirectStatements
from shared.db.errors import database_unavailable
from shared.db.listed import among, keyed
from shared.db.models import OutboxMessage, OutboxPending
from shared.db.staged import after_commit, stage
from shared.db.sweep import SWEEP_CHUNK, delete_first, sweep
from shared.db.uow import UnitOfWorkFactory
from shared.events.envelope import encode
from shared.events.models import Event
from shared.kafka.producer import create_producer, key_partition
from shared.kafka.topics import TopicNames, ensure_topics
from shared.observability import metrics
from shared.observability.tracing import trace_headers
from shared.settings import KafkaSettings, OutboxSettings
from shared.spacing import Spacing

log = logging.getLogger(__name__)

BACKLOG_REPORT_S = 5.0
# How long a stopping relay goes on publishing what it holds (see OutboxRelay.run).
DRAIN_S = 5.0


def enqueue(
    session: AsyncSession,
    event: Event,
    *,
    service: str,
    event_id: str | None = None,
    companion: Event | None = None,
) -> str:
    """Add ``event`` to the outbox in the session's transaction and return its event id;
    ``companion``, an event with the same key, goes out in the same row (see :func:`outbox_row`).

    The caller's unit of work commits it together with the state change it announces. The row
    is staged (:mod:`shared.db.staged`): nothing reads the outbox in the transaction that
    writes it. Where the session carries the process's relay (:data:`RELAY`) and the relay
    takes it, the row is written leased to that relay and handed to it once committed
    (:meth:`OutboxRelay.hand`); otherwise the relay is woken to claim it.
    """
    row = outbox_row(event, service=service, event_id=event_id, companion=companion)
    relay: OutboxRelay | None = session.info.get(RELAY)
    lease = relay.lease() if relay is not None else None
    if lease is None:
        stage(session, insert_outbox, row)
        if relay is not None:
            after_commit(session, relay.notify)
    else:
        stage(session, insert_leased, leased(row, lease), returned=_hand_when_committed)
    return str(row["event_id"])


# A session's ``info`` key: the process's relay, which publishes the rows it leases straight
# after their commit.
RELAY = "outbox_relay"
# What an outbox row is given; the other columns keep their defaults.
OUTBOX_COLUMNS = (
    "event_id",
    "event_type",
    "aggregate_id",
    "topic",
    "key",
    "value",
    "headers",
    "claimed_until",
    "attempts",
    "companion_topic",
    "companion_value",
    "companion_headers",
)


def insert_outbox(dialect: str) -> ClauseElement:
    """One outbox row (see :func:`outbox_row`), staged or on the driver connection."""
    return inserted(table_of(OutboxMessage), *OUTBOX_COLUMNS)


def insert_leased(dialect: str) -> ClauseElement:
    """:func:`insert_outbox` returning the row's id, for a row a relay will be handed."""
    outbox = table_of(OutboxMessage)
    return inserted(outbox, *OUTBOX_COLUMNS).returning(outbox.c.id)


def outbox_row(
    event: Event,
    *,
    service: str,
    event_id: str | None = None,
    companion: Event | None = None,
) -> dict[str, object]:
    """The outbox row announcing ``event``: its envelope, topic, key and trace headers; not
    leased to any relay (see :func:`leased`).

    ``companion`` is a second record published with it, under the same key: a status change's
    lifecycle ``issues.updated`` beside the event that made it. One row instead of two is one
    insert and one marking less; the relay publishes both records or neither counts as sent.
    It keeps its own event id, which a re-published row sends again, as it does the event's.
    """
    # The work that produced the event continues in whichever consumer reads it.
    traced = trace_headers()
    eid, value, headers = encode(event, service=service, event_id=event_id)
    row: dict[str, object] = {
        "event_id": eid,
        "event_type": event.TYPE,
        "aggregate_id": event.key(),
        "topic": event.TOPIC,
        "key": event.key(),
        "value": value,
        "headers": _text_headers(headers + traced),
        "claimed_until": None,
        "attempts": 0,
        "companion_topic": None,
        "companion_value": None,
        "companion_headers": None,
    }
    if companion is not None:
        if companion.key() != event.key():
            raise ValueError(f"a companion is keyed {companion.key()!r}, not {event.key()!r}")
        _, companion_value, companion_headers = encode(companion, service=service)
        row["companion_topic"] = companion.TOPIC
        row["companion_value"] = companion_value
        row["companion_headers"] = _text_headers(companion_headers + traced)
    return row


def _text_headers(headers: list[tuple[str, bytes]]) -> list[list[str]]:
    return [[name, raw.decode()] for name, raw in headers]


def leased(row: Mapping[str, Any], lease: datetime) -> dict[str, Any]:
    """``row`` written as already claimed, until ``lease``, by the relay it will be handed to."""
    return {**row, "claimed_until": lease, "attempts": 1}


def _hand_when_committed(
    session: AsyncSession, written: Sequence[Mapping[str, Any]], ids: list[tuple[Any, ...]]
) -> None:
    relay: OutboxRelay = session.info[RELAY]
    handed = [(row_id, row) for row, (row_id,) in zip(written, ids, strict=True)]
    after_commit(session, partial(relay.hand, handed))


def published_before(cutoff: datetime) -> ColumnElement[bool]:
    """An outbox row is published (not queued, :class:`OutboxPending`) and was written, or
    last queued again by the reconciler, before ``cutoff``."""
    outbox, pending = table_of(OutboxMessage), table_of(OutboxPending)
    queued = select(pending.c.id).where(pending.c.id == outbox.c.id).exists()
    return and_(~queued, func.coalesce(outbox.c.redriven_at, outbox.c.created_at) < cutoff)


class _Claimed(NamedTuple):
    id: int
    topic: str
    key: str
    value: bytes
    headers: list[list[str]]
    companion_topic: str | None = None
    companion_value: bytes | None = None
    companion_headers: list[list[str]] | None = None

    def records(self) -> Iterator[tuple[str, bytes, list[list[str]]]]:
        """The row's records: its event's, then its companion's if it has one."""
        yield self.topic, self.value, self.headers
        if self.companion_topic is not None and self.companion_value is not None:
            yield self.companion_topic, self.companion_value, self.companion_headers or []


@dataclass(slots=True)
class _Batch:
    """Records for one partition of one topic, and the rows they came from."""

    topic: str
    partition: int
    builder: BatchBuilder
    rows: list[_Claimed] = field(default_factory=list)

    def add(
        self, row: _Claimed, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> bool:
        """Whether one of the row's records fitted (a new batch always takes one)."""
        added = self.builder.append(key=key, value=value, timestamp=None, headers=headers)
        if added is None:
            return False
        self.rows.append(row)
        return True


# What a relay publishes of a row, after its id (see _Claimed).
_CLAIMED_COLUMNS = _Claimed._fields[1:]


class _Handed(NamedTuple):
    row: _Claimed
    lease: datetime


def _claim_next(dialect: str) -> ClauseElement:
    """Lease up to ``batch`` queued rows (:class:`OutboxPending`) whose lease (if any) ended
    before ``now``, in id order, and return their ids (their bytes: :func:`_claimed_rows`);
    PostgreSQL skips rows another relay has locked.

    On PostgreSQL the queue is read once, in id order, and each row chosen is changed where
    that read found it (its ``ctid``). Matched as a list, the rows were found by a scan of the
    whole queue, dead rows and all, in a plan kept from when it was short."""
    pending = table_of(OutboxPending)
    queued = pending.alias("queued_row")
    due = (
        select(literal_column(f"{queued.name}.ctid") if dialect == "postgresql" else queued.c.id)
        .where(queued.c.claimed_until.is_(None) | (queued.c.claimed_until < bindparam("now")))
        .order_by(queued.c.id)
        .limit(bindparam("batch", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    chosen = (
        literal_column(f"{pending.name}.ctid") == any_(func.array(due.scalar_subquery()))
        if dialect == "postgresql"
        else pending.c.id.in_(due.scalar_subquery())
    )
    return (
        update(pending)
        .where(chosen)
        .values(claimed_until=bindparam("lease"), attempts=pending.c.attempts + 1)
        .returning(pending.c.id)
    )


def _claimed_rows(dialect: str) -> ClauseElement:
    """The :class:`_Claimed` columns of the outbox rows whose ids are parameter ``keys``
    (:func:`shared.db.listed.keyed`)."""
    return keyed(table_of(OutboxMessage), "id", dialect, columns=_Claimed._fields)


def _published(dialect: str) -> ClauseElement:
    """The rows ``ids`` off the queue (:class:`OutboxPending`): on PostgreSQL each by its own
    look-up in the primary key, the batch's runs sent as one statement
    (:func:`shared.db.columnar.deleted`); elsewhere every row of the one ``ids`` parameter.

    PostgreSQL plans a prepared statement once it has run a few times and keeps that plan: one
    planned while the queue was nearly empty and matching a list against it would go on
    scanning it whole after an outage had filled it. Each row's own look-up is planned so at any
    size. A row that another relay claimed meanwhile (its lease had ended) is left as that
    relay changed it, and that relay publishes it again and marks it: a copy that consumers
    drop by its event id, as when the marking came too late.
    """
    pending = table_of(OutboxPending)
    if dialect == "postgresql":
        return deleted(pending, "id", by="id")
    return delete(pending).where(among(pending.c.id, "ids", dialect))


def _release(dialect: str) -> ClauseElement:
    """The queued rows ``ids`` leased to no one, as :func:`_published` finds them: on
    PostgreSQL each by its ``id`` (:func:`shared.db.columnar.updated`). A row that another relay
    claimed meanwhile (its lease had ended) is left as that relay changed it."""
    pending = table_of(OutboxPending)
    if dialect == "postgresql":
        return updated(pending, "id", "claimed_until", by="id")
    return (
        update(pending)
        .where(among(pending.c.id, "ids", dialect))
        .values(claimed_until=bindparam("claimed_until"))
    )


async def _mark(statements: DirectStatements, ids: list[int]) -> None:
    """The rows ``ids`` were published: off the queue."""
    await _for_rows(statements, _published, ids, {})


async def _unlease(statements: DirectStatements, ids: list[int]) -> None:
    """The rows ``ids`` were not published: leased to no one again."""
    await _for_rows(statements, _release, ids, {"claimed_until": None})


async def _for_rows(
    statements: DirectStatements, build: Build, ids: list[int], values: dict[str, object]
) -> None:
    """Run ``build`` (:func:`_published`, :func:`_release`) for the rows ``ids`` with
    ``values``, all rows or none: on PostgreSQL one run per row (sent as one statement), elsewhere
    one run for the list."""
    if statements.dialect == "postgresql":
        await statements.executemany(build, [{"id": row_id, **values} for row_id in ids])
    else:
        await statements.execute(build, {"ids": ids, **values})


class OutboxRelay:
    """Publishes committed outbox rows and marks them sent.

    Rows reach it two ways. The writers of this process lease their rows to it as they write
    them (:meth:`lease`) and hand them over once committed (:meth:`hand`): published without
    being read back. Every other row (another process's, one released after a failed send, one
    whose lease ran out) is claimed from the table in id order with a lease (``FOR UPDATE SKIP
    LOCKED`` on PostgreSQL), so several relays can run side by side. A relay that dies leaves
    its leased rows to be claimed once their lease ends. That may publish an event twice, which
    consumers' inboxes absorb.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        direct: Direct,
        *,
        kafka: KafkaSettings,
        settings: OutboxSettings,
        service: str,
    ) -> None:
        self._uow_factory = uow_factory
        self._direct = direct
        self._kafka = kafka
        self._settings = settings
        self._service = service
        self._batch_sizes = metrics.BATCH_SIZE.labels("relay", service)
        self._names = TopicNames(kafka.topic_prefix)
        self._producer: AIOKafkaProducer | None = None
        self._handed: deque[_Handed] = deque()
        self._claim_due = True
        self._last_claim = 0.0
        self._running = False
        self._spacing = Spacing(
            settings.linger_s, settings.linger_loaded_s, settings.loaded_rows_per_s
        )
        # On SQLite the driver returns each inserted row's id by a call of its own, made under
        # the single writer's lock; one claim per pass reads a whole batch back in one.
        self._takes_handed = direct.dialect == "postgresql"
        # Rows published but not yet marked sent, marked with the next claim (SQLite, in the
        # run loop): the claim and the marking then take one turn at the write gate, not two.
        self._unmarked: list[int] = []
        self.wake = asyncio.Event()
        self.broker_available = False

    def notify(self) -> None:
        """Called after a commit that added outbox rows nobody leased: claim them without
        waiting for the poll."""
        self._claim_due = True
        self.wake.set()

    def lease(self) -> datetime | None:
        """The lease for a row about to be written that this relay is to be handed once it is
        committed; None while it takes rows only from the table (it is not running, the broker
        is away, or it has enough in hand; always on SQLite), and the row is written unleased."""
        if not (self._takes_handed and self._running and self.broker_available):
            return None
        if len(self._handed) >= self._settings.batch_size * 2:
            return None
        return utcnow() + timedelta(seconds=self._settings.lease_s)

    def hand(self, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        """Rows written with a :meth:`lease` of this relay's, now committed: their ids and what
        was written. They go out with the next batch."""
        for row_id, row in rows:
            claimed = _Claimed(row_id, *(row[name] for name in _CLAIMED_COLUMNS))
            self._handed.append(_Handed(claimed, row["claimed_until"]))
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self._settings.poll_interval_s
        last_cleanup = last_gauge = 0.0
        loop = asyncio.get_running_loop()
        self._running = True
        try:
            while not stop.is_set():
                if loop.time() - last_gauge > BACKLOG_REPORT_S:
                    await self._report_backlog()
                    last_gauge = loop.time()
                last_pass = loop.time()
                next_pass = last_pass + self._settings.linger_s
                try:
                    sent = await self.relay_once(defer_marks=not self._takes_handed)
                    next_pass = self._spacing.next_start(last_pass, sent)
                    backoff = self._settings.poll_interval_s
                    if loop.time() - last_cleanup > 60:
                        await self.delete_sent()
                        last_cleanup = loop.time()
                except BrokerUnavailable as exc:
                    self.broker_available = False
                    log.warning("outbox relay cannot reach the broker: %s", exc)
                    await self._close_producer()
                    sent = 0
                    backoff = min(backoff * 2, 5.0)
                except Exception as exc:
                    if not database_unavailable(exc):
                        raise
                    log.warning("outbox relay cannot reach the database: %s", exc)
                    sent = 0
                    backoff = min(backoff * 2, 5.0)
                if sent < self._settings.batch_size:
                    await _wait_either(self.wake, stop, backoff)
                    # Passes are at least the linger apart (longer under load; shared.spacing):
                    # the commits landing meanwhile share one produce and one marking; an idle
                    # relay goes at once.
                    await asyncio.sleep(max(0.0, next_pass - loop.time()))
                    self.wake.clear()
            await self._drain()
        finally:
            self._running = False
            await self._mark_unmarked_on_stop()
            await self._release_handed()
            await self._close_producer()

    async def _drain(self) -> None:
        """On a graceful stop, which comes once the process's other workers have stopped
        (:class:`services.runtime.Runtime`): publish the rows in hand and those a last commit
        asked it to claim, for up to :data:`DRAIN_S`. Rows still in hand are then released and
        unclaimed ones stay unleased, for the next relay to claim at once; only a send cut off
        by the time limit leaves its rows leased until the lease ends. Nothing is leased to it
        from here on."""
        self._running = False
        if not self.broker_available:
            return  # it holds nothing: rows were written unleased while the broker was away
        try:
            async with asyncio.timeout(DRAIN_S):
                while self._handed or self._claim_due:
                    if not await self.relay_once() and not self._handed:
                        return
        except Exception as exc:
            log.warning("outbox relay stopped before publishing all it held: %s", exc)

    async def relay_once(self, *, defer_marks: bool = False) -> int:
        """Publish one batch; return how many rows were sent. :class:`BrokerUnavailable` if
        the broker failed; the database's own errors as they are. ``defer_marks``: the sent
        rows are marked with the next claim (see :meth:`_claim`), still leased until then."""
        rows = await self._next_batch()
        if not rows:
            return 0
        self._batch_sizes.observe(len(rows))
        batches: list[_Batch] = []
        futures: list[asyncio.Future[object]] = []
        results: list[object] = []
        try:
            with _on_broker():
                producer = await self._ensure_producer()
                batches = await self._batches(producer, rows)
                for batch in batches:
                    future = await producer.send_batch(
                        batch.builder, batch.topic, partition=batch.partition
                    )
                    futures.append(future)
        finally:
            # Every future is awaited, so no failure goes unretrieved; rows with a record whose
            # batch did not go out are released for the next pass.
            results = list(await asyncio.gather(*futures, return_exceptions=True))
            sent, unsent = _outcome(rows, batches, results)
            if defer_marks:
                self._unmarked += sent
            await self._finish([] if defer_marks else sent, unsent)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            with _on_broker():
                raise failures[0]
        metrics.OUTBOX_PUBLISHED.labels(service=self._service).inc(len(sent))
        topics = Counter(topic for row in rows for topic, _, _ in row.records())
        for topic, count in topics.items():
            metrics.EVENTS_PRODUCED.labels(self._service, topic).inc(count)
        self.broker_available = True
        return len(sent)

    async def _batches(self, producer: AIOKafkaProducer, rows: list[_Claimed]) -> list[_Batch]:
        """``rows`` as the producer's record batches: each record of a row in its key's
        partition of its topic (the producer's own default partitioner, so an issue's events
        share one), in order, a new batch whenever one is full. Handing the producer whole
        batches costs a fraction of one ``send`` per record. A row's records share its key, and
        its partition where their topics have the same partitions: hashed once."""
        partitions: dict[str, tuple[int, ...]] = {}
        filling: dict[tuple[str, int], _Batch] = {}
        batches: list[_Batch] = []
        for row in rows:
            key = row.key.encode()
            placed: dict[tuple[int, ...], int] = {}
            for name, value, text_headers in row.records():
                topic = self._names(name)
                if topic not in partitions:
                    partitions[topic] = tuple(sorted(await producer.partitions_for(topic)))
                among_partitions = partitions[topic]
                partition = placed.get(among_partitions)
                if partition is None:
                    partition = placed[among_partitions] = key_partition(key, among_partitions)
                headers = [(header, text.encode()) for header, text in text_headers]
                batch = filling.get((topic, partition))
                if batch is None or not batch.add(row, key, value, headers):
                    batch = _Batch(topic, partition, producer.create_batch())
                    if not batch.add(row, key, value, headers):
                        raise RuntimeError(f"outbox row {row.id} does not fit an empty batch")
                    filling[(topic, partition)] = batch
                    batches.append(batch)
        for batch in batches:
            batch.builder.close()
        return batches

    async def _next_batch(self) -> list[_Claimed]:
        """Rows claimed from the table, when a commit asked for that, the last claim was full
        or the poll interval has passed, then rows in hand: up to a batch in all. A row in hand
        whose lease is half gone (the relay was held up) is released instead, for whichever
        relay claims it."""
        loop = asyncio.get_running_loop()
        claimed: list[_Claimed] = []
        if self._claim_due or loop.time() - self._last_claim >= self._settings.poll_interval_s:
            self._last_claim = loop.time()
            self._claim_due = False
            claimed = await self._claim()
            # A full batch may have left more behind: the next pass claims again.
            self._claim_due |= len(claimed) >= self._settings.batch_size
        handed: list[_Claimed] = []
        stale: list[int] = []
        fresh_until = utcnow() + timedelta(seconds=self._settings.lease_s / 2)
        while self._handed and len(claimed) + len(handed) < self._settings.batch_size:
            row, lease = self._handed.popleft()
            if lease < fresh_until:
                stale.append(row.id)
            else:
                handed.append(row)
        await self._finish([], stale)
        await self._mark_unmarked()  # those no claim this pass took
        return claimed + handed

    async def _mark_unmarked(self) -> None:
        """Published rows whose marking waited for a next claim are marked now."""
        await self._finish(self._unmarked, [])
        self._unmarked = []

    async def _mark_unmarked_on_stop(self) -> None:
        """On the way out: :meth:`_mark_unmarked`, a failure only logged."""
        if self._unmarked:
            try:
                await self._mark_unmarked()
            except Exception as exc:
                count = len(self._unmarked)
                log.warning(
                    "%d published outbox rows left unmarked until their lease ends "
                    "(then sent again, and dropped by consumers): %s",
                    count,
                    exc,
                )

    async def _release_handed(self) -> None:
        """On the way out: rows still in hand are released, for the next relay to claim at
        once instead of when their lease ends."""
        ids = [row.id for row, _ in self._handed]
        self._handed.clear()
        if ids:
            try:
                await self._finish([], ids)
            except Exception as exc:
                log.warning("%d outbox rows left leased until their lease ends: %s", len(ids), exc)

    async def _claim(self) -> list[_Claimed]:
        """Lease the next batch, on the driver connection: the relay wants the rows' bytes,
        not ORM objects. Each statement is atomic on its own, so they are sent
        without BEGIN and COMMIT: the lease, then (with rows leased) a read of their bytes; a
        process that stops between them leaves the rows to be claimed once the lease ends.
        Rows published since the last claim whose marking was deferred are marked first, on
        the same connection: on SQLite one turn at the write gate
        (:mod:`shared.db.write_gate`) for all."""
        now = utcnow()
        lease = now + timedelta(seconds=self._settings.lease_s)
        async with self._direct.statements() as statements:
            if self._unmarked:
                await _mark(statements, self._unmarked)
                self._unmarked = []
            claimed = await statements.fetch(
                _claim_next, {"now": now, "lease": lease, "batch": self._settings.batch_size}
            )
            if claimed:
                ids = [row_id for (row_id,) in claimed]
                claimed = await statements.fetch(_claimed_rows, {"keys": ids})
        return sorted((_Claimed(*row) for row in claimed), key=lambda row: row.id)

    async def _finish(self, sent: list[int], unsent: list[int]) -> None:
        """Sent rows are marked so; unsent ones are released for the next pass.

        Without BEGIN and COMMIT around them: each statement is all rows or none, and both are
        idempotent. A database that is unavailable or busy is waited out for up to half the
        lease, since the rows are already on the broker: marked late beats published twice. A row
        still unmarked after that is sent again once its lease ends, and consumers drop the copy
        by its event id. Nothing to do takes no connection."""
        if not sent and not unsent:
            return
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._settings.lease_s / 2),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception(database_unavailable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self._direct.statements() as statements:
                    if sent:
                        await _mark(statements, sent)
                    if unsent:
                        await _unlease(statements, unsent)
        if unsent:
            # Back in the table: the next pass claims them.
            self._claim_due = True

    async def _report_backlog(self) -> None:
        """Unsent rows and the age of the oldest (a database error only skips this report).

        The oldest is the queue's lowest id, looked up alone: joined to the outbox, a count
        planned while the queue's statistics still counted rows just deleted read the whole
        outbox."""
        outbox, pending = table_of(OutboxMessage), table_of(OutboxPending)
        first = select(func.min(pending.c.id)).scalar_subquery()
        statement = select(
            select(func.count()).select_from(pending).scalar_subquery(),
            select(outbox.c.created_at).where(outbox.c.id == first).scalar_subquery(),
        )
        try:
            async with self._uow_factory() as uow:
                count, oldest = (await uow.session.execute(statement)).one()
        except Exception as exc:
            log.warning("outbox backlog not measured: %s", exc)
            return
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0
        metrics.OUTBOX_BACKLOG.labels(service=self._service).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(service=self._service).set(max(age, 0.0))

    async def delete_sent(self, *, chunk: int = SWEEP_CHUNK) -> int:
        """Drop published rows written (or last re-driven) longer ago than the retention (kept
        until then for re-drives), at most ``chunk`` per transaction; how many went. A row still
        queued stays, however old."""
        cutoff = utcnow() - timedelta(hours=self._settings.retention_h)
        outbox = table_of(OutboxMessage)

        async def delete_some(session: AsyncSession, limit: int) -> int:
            return await delete_first(
                session, (outbox.c.id,), published_before(cutoff), limit=limit
            )

        return await sweep(self._uow_factory, delete_some, chunk=chunk)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self._kafka)
            producer = create_producer(self._kafka, service=f"{self._service}-relay")
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:
                log.debug("producer stop failed", exc_info=True)


def _outcome(
    rows: list[_Claimed], batches: list[_Batch], results: list[object]
) -> tuple[list[int], list[int]]:
    """The ids of ``rows`` sent and unsent: a row is sent once every batch holding one of its
    records went out (``results``, one per batch handed to the producer, in order)."""
    went = [not isinstance(result, BaseException) for result in results]
    went += [False] * (len(batches) - len(went))
    published: set[int] = set()
    held: set[int] = set()
    for batch, ok in zip(batches, went, strict=True):
        (published if ok else held).update(row.id for row in batch.rows)
    sent = [row.id for row in rows if row.id in published and row.id not in held]
    done = set(sent)
    return sent, [row.id for row in rows if row.id not in done]


class BrokerUnavailable(Exception):
    """The broker could not take the relay's records (the database is a separate matter)."""


@contextlib.contextmanager
def _on_broker() -> Iterator[None]:
    """Broker failures inside the block as :class:`BrokerUnavailable`: a refused connection is
    an ``OSError`` from the broker's client and from the database's driver alike."""
    try:
        yield
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc


async def _wait_either(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
