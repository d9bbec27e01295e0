"""The consumer loop every service uses: one group member, its client rebuilt on broker loss.

What happens to the records a fetch returns is :mod:`shared.kafka.processing`'s business.
Offsets are committed after their transaction: at most once per ``CONSUMER_COMMIT_INTERVAL_MS``
while records keep coming, at once when a fetch comes back empty, on partition revocation and on
shutdown; auto-commit is off. What a crash leaves uncommitted is read again and the inbox skips
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.base import utcnow
from shared.db.sweep import sweep
from shared.db.uow import UnitOfWorkFactory
from shared.kafka import inbox
from shared.kafka.dead_letters import markers_of
from shared.kafka.offsets import log_ends
from shared.kafka.processing import ConsumerSpec, EventProcessor
from shared.kafka.producer import create_producer
from shared.kafka.topics import TopicNames, ensure_topics, group_id
from shared.observability import metrics
from shared.settings import ConsumerSettings, KafkaSettings
from shared.spacing import Spacing

__all__ = ["ConsumerLoop", "ConsumerSpec"]

log = logging.getLogger(__name__)

Offset = TypeVar("Offset")


class _Stoppable(Protocol):
    """A part of a consumer client that :meth:`ConsumerLoop._watched` stops if abandoned."""

    async def stop(self) -> None: ...


async def _stop_each(parts: Iterable[_Stoppable], *, within_s: float | None = None) -> None:
    """Stop every part of a client that is being given up, each within ``within_s`` if given;
    one that fails to stop does not keep the others running."""
    for part in parts:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(part.stop(), timeout=within_s)


class _TopologyLost(KafkaError):  # type: ignore[misc]
    """The broker no longer knows our topic (a broker that lost its data): rebuild the client."""


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

    # How long a client told to stop may take before it is abandoned, and its consumer stopped.
    _abandon_after_s = 5.0

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
        self._committed_at = 0.0
        self._lag_reported_at = 0.0
        self._fetched_at = 0.0
        self._spacing = Spacing(
            settings.batch_linger_ms / 1000,
            settings.batch_linger_loaded_ms / 1000,
            settings.loaded_events_per_s,
        )
        self._next_batch = 0.0
        self._stall_checked_at = 0.0
        self._ends_checked_at = 0.0
        self._swept_at = float("-inf")  # the first sweep comes with the first batch
        self._beat = 0.0
        self._client_started_at = 0.0
        self._orphan_offsets: dict[TopicPartition, int | None] | None = None
        self._processor = EventProcessor(
            spec,
            uow_factory=uow_factory,
            settings=settings,
            names=self._names,
            group_id=self.group_id,
            beat=self._beating,
        )

    @property
    def processed(self) -> int:
        return self._processor.processed

    def _beating(self) -> None:
        self._beat = time.monotonic()

    @property
    def group_id(self) -> str:
        return group_id(self._kafka, self.spec.name)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            consumer = self._client()
            dlq = create_producer(self._kafka, service=f"{self.spec.name}-dlq")
            try:
                client = asyncio.create_task(self._run_client(consumer, dlq, stop))
                await self._watched(client, consumer, dlq)
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

    async def _watched(self, client: asyncio.Task[None], *parts: _Stoppable) -> None:
        """Wait for ``client``; abandon it if its loop stops beating. aiokafka can wait forever
        on a broker that came back without its data, in places no timeout reaches. An abandoned
        client's ``parts`` (its consumer and its DLQ producer) are stopped here: its task may
        never reach its own stop, and the consumer's group member would live on without it
        (seen in the fault suite: it kept a partition through every rebalance after, and nobody
        read that partition again); the producer's connections would wait for the collector."""
        self._beat = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({client}, timeout=1.0)
                if done:
                    if client.cancelled():
                        # Nobody cancelled it: a CancelledError escaped aiokafka (seen when the
                        # broker drops a fetch's connection). Ending here would end the member.
                        # The client's own way out may have been cut short the same way; its
                        # parts are stopped here (stopping one twice does nothing).
                        await _stop_each(parts, within_s=self._abandon_after_s)
                        raise _TopologyLost("the consumer client was cancelled from inside")
                    client.result()
                    return
                silent = time.monotonic() - self._beat
                if silent > self._hang_after_s:
                    raise _TopologyLost(f"the consumer loop made no progress for {silent:.0f} s")
        finally:
            if not client.done():
                client.cancel()
                await asyncio.wait({client}, timeout=self._abandon_after_s)
            if not client.done():
                await _stop_each(parts, within_s=self._abandon_after_s)

    def _client(self) -> AIOKafkaConsumer:
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
            fetch_max_wait_ms=self.spec.fetch_max_wait_ms or self._settings.fetch_max_wait_ms,
        )
        consumer.subscribe([self._names(self.spec.topic)], listener=_CommitOnRevoke(self))
        return consumer

    async def _run_client(
        self, consumer: AIOKafkaConsumer, dlq: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        try:
            await ensure_topics(self._kafka)
            await consumer.start()
        except BaseException:
            # A start that failed part way leaves the consumer's connections open (and its
            # group coordinator, if it got that far); the DLQ producer was never started, and
            # its client is closed all the same.
            await _stop_each((consumer, dlq))
            raise
        self._consumer = consumer
        self._fetched_at = self._client_started_at = self._ends_checked_at = time.monotonic()
        self._orphan_offsets = None
        log.info("consumer %s joined group %s", self.spec.name, self.group_id)
        try:
            await dlq.start()
            while not stop.is_set():
                self._beat = time.monotonic()
                batch = await self._fetch(consumer)
                records = [record for records in batch.values() for record in records]
                if records:
                    self._fetched_at = time.monotonic()
                    self._next_batch = self._spacing.next_start(self._fetched_at, len(records))
                await self._check_positions(consumer)
                if records:
                    await self._processor.process(records, dlq=dlq, stop=stop)
                for partition, done in batch.items():
                    if done:
                        self._pending[partition] = done[-1].offset + 1
                if not records or self._commit_due():
                    await self.commit_pending()
                await self._report_lag(consumer)
                await self._forget_handled()
                if 0 < len(records) < self._settings.batch_size:
                    await self._linger()
        finally:
            try:
                await self.commit_pending()
            except _TopologyLost:
                log.warning("consumer %s: topic gone from the broker, reconnecting", self.spec.name)
            finally:
                self._consumer = None
                try:
                    await consumer.stop()
                finally:
                    # Also when the consumer's stop raised (a stray CancelledError from aiokafka
                    # once the broker has gone): a producer never stopped is left open.
                    await dlq.stop()

    async def _forget_handled(self) -> None:
        """Forget this consumer's inbox records (and parked-record markers) older than the
        retention, once per sweep interval, in short transactions. A sweep that fails is
        logged and left to the next one: consuming goes on."""
        now = time.monotonic()
        if now - self._swept_at < self._settings.inbox_sweep_interval_s:
            return
        self._swept_at = now
        before = utcnow() - timedelta(hours=self._settings.inbox_retention_h)
        consumers = (self.spec.name, markers_of(self.spec.name))

        async def forget_some(session: AsyncSession, limit: int) -> int:
            return await inbox.forget(session, consumers, before=before, limit=limit)

        try:
            forgotten = await sweep(self._uow_factory, forget_some, between=self._beating)
        except Exception as exc:
            log.warning("consumer %s: inbox not swept: %s", self.spec.name, exc)
            return
        if forgotten:
            log.info(
                "consumer %s forgot %d inbox records handled before %s",
                self.spec.name,
                forgotten,
                before.isoformat(timespec="seconds"),
            )

    async def _linger(self) -> None:
        """After a batch that was not full, let the next one gather until ``batch_linger_ms``
        after this one was fetched (``batch_linger_loaded_ms`` while events come in at
        ``loaded_events_per_s`` or faster; :mod:`shared.spacing`): under load a transaction, an
        inbox read and an offset commit then serve many events instead of one each. A consumer
        that was idle handles its first record at once."""
        await asyncio.sleep(max(0.0, self._next_batch - time.monotonic()))

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

    async def _check_positions(self, consumer: AIOKafkaConsumer) -> None:
        """At most once per ``stall_after_s``, busy or not: a partition that ends before our
        position (the broker lost its log) is read again from its start. The embedded broker
        answers a fetch past a partition's end with nothing, not an error, so a consumer kept
        busy by its other partitions would otherwise wait there while new records pile up
        below its position. And when nothing has been fetched for ``stall_after_s`` although a
        partition holds records past our position, or none is assigned while records wait,
        :class:`_TopologyLost` (the client is rebuilt); an idle consumer at the end of its
        partitions is left alone."""
        now = time.monotonic()
        every = self._settings.stall_after_s
        stalled = now - self._fetched_at >= every and now - self._stall_checked_at >= every
        if not stalled and now - self._ends_checked_at < every:
            return
        self._ends_checked_at = now
        if stalled:
            self._stall_checked_at = now
        assigned = list(consumer.assignment())
        if not assigned:
            if stalled:
                await self._check_orphaned(consumer)
            return
        # While records come in, only ends from fetches: the embedded broker's answer to an
        # offset query can fall short of the end, below a position inside the last batch.
        ends, positions = await self._ends_and(
            consumer, assigned, consumer.position, fetched_within_s=every, fetched_only=not stalled
        )
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
                self._pending.pop(tp, None)  # an offset from the lost log, not to be committed
            elif ends[tp] > position:
                behind.append(f"{tp.topic}/{tp.partition} at {position} of {ends[tp]}")
        if behind and stalled:
            raise _TopologyLost(
                f"nothing fetched for {now - self._fetched_at:.0f} s although " + ", ".join(behind)
            )

    async def _ends_and(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        offset_of: Callable[[TopicPartition], Awaitable[Offset]],
        *,
        fetched_within_s: float = 0.0,
        fetched_only: bool = False,
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, Offset]]:
        """The partitions' end offsets (:func:`log_ends`) and ``offset_of`` each partition with
        one, every query bounded by the request timeout: a client that cannot answer is
        rebuilt."""
        wait_s = self._kafka.request_timeout_ms / 1000
        try:
            ends = await asyncio.wait_for(
                log_ends(
                    consumer,
                    partitions,
                    fetched_within_s=fetched_within_s,
                    fetched_only=fetched_only,
                ),
                timeout=wait_s,
            )
            offsets = {tp: await asyncio.wait_for(offset_of(tp), timeout=wait_s) for tp in ends}
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
        # Greater, not different: an offset query's answer can fall short of the end.
        waiting = any(ends[tp] > (committed[tp] or 0) for tp in partitions)
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

    def _commit_due(self) -> bool:
        return time.monotonic() - self._committed_at >= self._settings.commit_interval_ms / 1000

    async def commit_pending(self) -> None:
        """Commit offsets of records whose transactions have committed."""
        if not self._pending or self._consumer is None:
            return
        offsets, self._pending = self._pending, {}
        self._committed_at = time.monotonic()
        consumer = self._consumer
        assigned = consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        for tp, offset in list(offsets.items()):
            if _beyond_end(consumer, tp, offset):
                del offsets[tp]
                log.warning(
                    "consumer %s: not committing %s/%d at %d, past the end a fetch reported",
                    self.spec.name,
                    tp.topic,
                    tp.partition,
                    offset,
                )
        if offsets:
            try:
                # aiokafka retries a commit to an unknown topic forever; bound it.
                await asyncio.wait_for(
                    consumer.commit(offsets), timeout=self._kafka.request_timeout_ms / 1000
                )
            except (UnknownTopicOrPartitionError, TimeoutError) as exc:
                raise _TopologyLost(f"offset commit did not complete: {exc!r}") from exc
            except KafkaError as exc:
                # Safe to lose: the records are re-delivered and the inbox skips them.
                log.warning("offset commit failed for %s: %s", self.spec.name, exc)


def _beyond_end(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bool:
    """Whether ``offset`` lies past the end the last fetch of ``tp`` reported: an offset in a
    log the broker has lost since (it restarted without its data). Committed, it would start
    the group there after the next rebalance, past the new log's records up to it."""
    high = consumer.highwater(tp)
    return high is not None and offset > high
