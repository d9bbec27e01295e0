"""The idempotent consumer loop every service uses.

For each record: decode (a record that is not a valid event goes to ``<topic>.dlq``), then in one
unit of work record the event id in the inbox and run the handler. Offsets are committed after
that transaction, per batch, on partition revocation and on shutdown; auto-commit is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from opentelemetry.trace import SpanKind
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.db.base import utcnow
from shared.db.errors import database_unavailable
from shared.db.models import InboxRecord
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope, InvalidMessage, decode
from shared.kafka.producer import create_producer
from shared.kafka.topics import TopicNames, ensure_topics
from shared.observability import metrics
from shared.observability.tracing import continued_from, tracer
from shared.settings import ConsumerSettings, KafkaSettings

log = logging.getLogger(__name__)

OVERSIZED_KEPT_BYTES = 64 * 1024

Offset = TypeVar("Offset")

# A handler gets the unit of work, the event and what ``prepare`` returned for it (or None).
Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]
# Work done before the transaction opens (remote look-ups), so no transaction waits on a network.
Prepare = Callable[[Envelope], Awaitable[Any]]


class _DuplicateEvent(Exception):
    """Another instance committed this event id first."""


class _TopologyLost(KafkaError):  # type: ignore[misc]
    """The broker no longer knows our topic (a broker that lost its data): rebuild the client."""


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    topic: str
    handler: Handler
    prepare: Prepare | None = None


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._loop.forget_lag(revoked)
        try:
            await self._loop.commit_pending()
        except KafkaError as exc:
            log.warning("commit on revocation failed for %s: %s", self._loop.spec.name, exc)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={
                "consumer": self._loop.spec.name,
                "partitions": [tp.partition for tp in assigned],
            },
        )


class ConsumerLoop:
    """Runs one consumer group member until ``stop`` is set; restarts its client on broker loss."""

    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        uow_factory: UnitOfWorkFactory,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
    ) -> None:
        self.spec = spec
        self._uow_factory = uow_factory
        self._kafka = kafka
        self._settings = settings
        self._names = TopicNames(kafka.topic_prefix)
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}
        self._lag_reported_at = 0.0
        self._fetched_at = 0.0
        self._stall_checked_at = 0.0
        self._beat = 0.0
        self._client_started_at = 0.0
        self._orphan_offsets: dict[TopicPartition, int | None] | None = None
        self.processed = 0

    @property
    def group_id(self) -> str:
        return f"{self._kafka.topic_prefix}csp-escalation.{self.spec.name}"

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self._watched(asyncio.create_task(self._run_client(stop)))
                backoff = 0.5
            except (KafkaError, OSError) as exc:
                log.warning("consumer %s lost the broker: %s", self.spec.name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    @property
    def _hang_after_s(self) -> float:
        """How long the loop may go without a beat before its client counts as stuck."""
        kafka = self._kafka
        waits_ms = kafka.request_timeout_ms + kafka.rebalance_timeout_ms
        return self._settings.stall_after_s + (self._settings.poll_timeout_ms + waits_ms) / 1000

    async def _watched(self, client: asyncio.Task[None]) -> None:
        """Wait for ``client``; abandon it if its loop stops beating. aiokafka can wait forever
        on a broker that came back without its data, in places no timeout reaches."""
        self._beat = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({client}, timeout=1.0)
                if done:
                    client.result()
                    return
                silent = time.monotonic() - self._beat
                if silent > self._hang_after_s:
                    raise _TopologyLost(f"the consumer loop made no progress for {silent:.0f} s")
        finally:
            if not client.done():
                client.cancel()
                await asyncio.wait({client}, timeout=5.0)

    async def _run_client(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=f"{self._kafka.client_id}-{self.spec.name}",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._kafka.session_timeout_ms,
            heartbeat_interval_ms=self._kafka.heartbeat_interval_ms,
            rebalance_timeout_ms=self._kafka.rebalance_timeout_ms,
            request_timeout_ms=self._kafka.request_timeout_ms,
            max_poll_records=self._settings.batch_size,
        )
        consumer.subscribe([self._names(self.spec.topic)], listener=_CommitOnRevoke(self))
        dlq = create_producer(self._kafka, service=f"{self.spec.name}-dlq")
        await ensure_topics(self._kafka)
        await consumer.start()
        self._consumer = consumer
        self._fetched_at = self._client_started_at = time.monotonic()
        self._orphan_offsets = None
        log.info("consumer %s joined group %s", self.spec.name, self.group_id)
        try:
            await dlq.start()
            while not stop.is_set():
                self._beat = time.monotonic()
                batch = await self._fetch(consumer)
                if any(batch.values()):
                    self._fetched_at = time.monotonic()
                else:
                    await self._check_stalled(consumer)
                for partition, records in batch.items():
                    for record in records:
                        await self._process(record, dlq=dlq, stop=stop)
                        self._pending[partition] = record.offset + 1
                await self.commit_pending()
                await self._report_lag(consumer)
        finally:
            try:
                await self.commit_pending()
            except _TopologyLost:
                log.warning("consumer %s: topic gone from the broker, reconnecting", self.spec.name)
            finally:
                self._consumer = None
                await consumer.stop()
                await dlq.stop()

    async def _fetch(
        self, consumer: AIOKafkaConsumer
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """One ``getmany``; one that outlives its own timeout by a request timeout is a client
        stuck on a broker that came back without its data, so the client is rebuilt."""
        poll_ms = self._settings.poll_timeout_ms
        try:
            batch: dict[TopicPartition, list[ConsumerRecord]] = await asyncio.wait_for(
                consumer.getmany(timeout_ms=poll_ms, max_records=self._settings.batch_size),
                timeout=(poll_ms + self._kafka.request_timeout_ms) / 1000,
            )
        except TimeoutError as exc:
            raise _TopologyLost("a fetch did not return") from exc
        return batch

    async def _check_stalled(self, consumer: AIOKafkaConsumer) -> None:
        """Raise :class:`_TopologyLost` (the client is rebuilt) when nothing has been fetched for
        ``stall_after_s`` although a partition holds records past our position, or when a
        partition ends before our position (the broker lost its log). Checked at most once per
        ``stall_after_s``; an idle consumer at the end of its partitions is left alone."""
        now = time.monotonic()
        stall_after = self._settings.stall_after_s
        if now - self._fetched_at < stall_after or now - self._stall_checked_at < stall_after:
            return
        self._stall_checked_at = now
        assigned = list(consumer.assignment())
        if not assigned:
            await self._check_orphaned(consumer)
            return
        ends, positions = await self._ends_and(consumer, assigned, consumer.position)
        behind = []
        for tp, position in positions.items():
            if ends[tp] < position:
                # The log is shorter than what we read: the broker lost it and what is there now
                # is new. Read it from the start; the inbox skips anything already processed.
                log.warning(
                    "consumer %s: %s/%d ends at %d, before our offset %d; reading it again",
                    self.spec.name,
                    tp.topic,
                    tp.partition,
                    ends[tp],
                    position,
                )
                await consumer.seek_to_beginning(tp)
            elif ends[tp] > position:
                behind.append(f"{tp.topic}/{tp.partition} at {position} of {ends[tp]}")
        if behind:
            raise _TopologyLost(
                f"nothing fetched for {now - self._fetched_at:.0f} s although " + ", ".join(behind)
            )

    async def _ends_and(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        offset_of: Callable[[TopicPartition], Awaitable[Offset]],
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, Offset]]:
        """The partitions' end offsets and ``offset_of`` each, every query bounded by the request
        timeout: a client that cannot answer is rebuilt."""
        wait_s = self._kafka.request_timeout_ms / 1000
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(partitions), timeout=wait_s)
            offsets = {
                tp: await asyncio.wait_for(offset_of(tp), timeout=wait_s) for tp in partitions
            }
        except TimeoutError as exc:
            raise _TopologyLost("the broker did not answer an offset query") from exc
        return ends, offsets

    async def _check_orphaned(self, consumer: AIOKafkaConsumer) -> None:
        """No partitions for a long while: fine for a spare member of a group that is making
        progress; stuck when records wait and the group's offsets have not moved since the last
        check (a broker that lost its data and never took this member back in)."""
        if time.monotonic() - self._client_started_at < self._hang_after_s:
            return
        topic = self._names(self.spec.topic)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return
        ends, committed = await self._ends_and(consumer, partitions, consumer.committed)
        waiting = any(ends[tp] != (committed[tp] or 0) for tp in partitions)
        unmoved = self._orphan_offsets == committed
        self._orphan_offsets = committed
        if waiting and unmoved:
            raise _TopologyLost("no partitions assigned while records wait and the group is idle")

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Records behind the partition end, per assigned partition (at most once a second)."""
        now = time.monotonic()
        if now - self._lag_reported_at < 1.0:
            return
        self._lag_reported_at = now
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue
            try:
                # position() waits for an offset reset that a confused client may never finish.
                position = await asyncio.wait_for(
                    consumer.position(tp), timeout=self._kafka.request_timeout_ms / 1000
                )
            except TimeoutError as exc:
                raise _TopologyLost(f"no position for {tp.topic}/{tp.partition}") from exc
            metrics.CONSUMER_LAG.labels(self.spec.name, self.spec.topic, str(tp.partition)).set(
                max(end - position, 0)
            )

    def forget_lag(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(self.spec.name, self.spec.topic, str(tp.partition))

    async def commit_pending(self) -> None:
        """Commit offsets of records whose transactions have committed."""
        if not self._pending or self._consumer is None:
            return
        offsets, self._pending = self._pending, {}
        assigned = self._consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        if offsets:
            try:
                # aiokafka retries a commit to an unknown topic forever; bound it.
                await asyncio.wait_for(
                    self._consumer.commit(offsets), timeout=self._kafka.request_timeout_ms / 1000
                )
            except (UnknownTopicOrPartitionError, TimeoutError) as exc:
                raise _TopologyLost(f"offset commit did not complete: {exc!r}") from exc
            except KafkaError as exc:
                # Safe to lose: the records are re-delivered and the inbox skips them.
                log.warning("offset commit failed for %s: %s", self.spec.name, exc)

    async def _process(
        self, record: ConsumerRecord, *, dlq: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        headers = list(record.headers or ())
        with (
            continued_from(headers),
            tracer().start_as_current_span(
                f"{self.spec.topic} process",
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": record.topic,
                    "messaging.consumer.group.name": self.group_id,
                    "messaging.kafka.offset": record.offset,
                },
            ),
        ):
            size = len(record.value or b"")
            if size > self._settings.max_record_bytes:
                reason = f"record of {size} bytes is over the {self._settings.max_record_bytes}"
                await self._dead_letter(
                    record, f"{reason} byte limit; not read", dlq=dlq, keep=OVERSIZED_KEPT_BYTES
                )
                return
            try:
                envelope = decode(record.value, headers)
            except InvalidMessage as exc:
                await self._dead_letter(record, str(exc), dlq=dlq)
                return
            with structlog.contextvars.bound_contextvars(**_correlation(envelope)):
                await self._process_event(record, envelope, dlq=dlq, stop=stop)

    async def _process_event(
        self,
        record: ConsumerRecord,
        envelope: Envelope,
        *,
        dlq: AIOKafkaProducer,
        stop: asyncio.Event,
    ) -> None:
        started = time.perf_counter()
        attempt = 0
        while True:
            self._beat = time.monotonic()
            try:
                result = await self._handle_once(envelope)
                elapsed = time.perf_counter() - started
                metrics.EVENTS_CONSUMED.labels(self.spec.name, self.spec.topic, result).inc()
                metrics.PROCESSING_SECONDS.labels(self.spec.name).observe(elapsed)
                self.processed += 1
                log.info(
                    "event %s",
                    result,
                    extra={"event_type": envelope.type, "ms": round(elapsed * 1000, 1)},
                )
                return
            except InvalidMessage as exc:
                await self._dead_letter(record, str(exc), dlq=dlq)
                return
            except Exception as exc:
                if database_unavailable(exc):
                    log.warning("database unavailable, will retry %s: %s", envelope.id, exc)
                    if stop.is_set():
                        raise
                    backoff = self._settings.retry_backoff_s * 2 ** min(attempt, 6)
                    await asyncio.sleep(min(backoff, 10))
                    continue
                attempt += 1
                log.exception("handler failed for %s (attempt %d)", envelope.id, attempt)
                if attempt >= self._settings.max_attempts:
                    await self._dead_letter(record, _describe(exc), dlq=dlq)
                    return
                await asyncio.sleep(self._settings.retry_backoff_s * 2 ** (attempt - 1))

    async def _handle_once(self, envelope: Envelope) -> str:
        prepared = await self.spec.prepare(envelope) if self.spec.prepare else None
        try:
            async with self._uow_factory() as uow:
                seen = await uow.session.scalar(
                    select(InboxRecord.event_id).where(
                        InboxRecord.consumer == self.spec.name, InboxRecord.event_id == envelope.id
                    )
                )
                if seen is not None:
                    return "duplicate"
                uow.session.add(InboxRecord(consumer=self.spec.name, event_id=envelope.id))
                try:
                    await uow.session.flush()
                except IntegrityError as exc:
                    raise _DuplicateEvent from exc
                await self.spec.handler(uow, envelope, prepared)
                await uow.commit()
                return "processed"
        except _DuplicateEvent:
            return "duplicate"

    async def _dead_letter(
        self,
        record: ConsumerRecord,
        reason: str,
        *,
        dlq: AIOKafkaProducer,
        keep: int | None = None,
    ) -> None:
        """Park ``record`` on the DLQ with why; ``keep``: only its first bytes (it is too big
        to forward, and replaying it would only park it again)."""
        topic = self._names.dlq(self.spec.topic)
        value = record.value
        extra: list[tuple[str, bytes]] = []
        if keep is not None and value is not None and len(value) > keep:
            value = value[:keep]
            extra.append(("dlq.truncated_from", str(len(record.value)).encode()))
        headers = [
            *list(record.headers or ()),
            ("dlq.reason", reason[:2000].encode()),
            ("dlq.consumer", self.spec.name.encode()),
            ("dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dlq.failed_at", utcnow().isoformat().encode()),
            *extra,
        ]
        await dlq.send_and_wait(topic, value=value, key=record.key, headers=headers)
        metrics.DLQ_RECORDS.labels(self.spec.name, self.spec.topic).inc()
        log.error(
            "record dead-lettered",
            extra={
                "consumer": self.spec.name,
                "dlq_topic": topic,
                "reason": reason[:500],
                "source": f"{record.topic}/{record.partition}/{record.offset}",
            },
        )


def _correlation(envelope: Envelope) -> dict[str, str | None]:
    """The ids every log line about this event carries."""
    issue_id = getattr(envelope.data, "issue_id", None)
    partner_id = getattr(envelope.data, "partner_id", None)
    return {
        "event_id": envelope.id,
        "issue_id": str(issue_id) if issue_id else None,
        "partner_id": str(partner_id) if partner_id else None,
    }


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
