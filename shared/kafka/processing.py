"""What a consumer does with the records one fetch returned.

Records that are not valid events go to ``<topic>.dlq`` with the reason. The valid ones are
handled together in one unit of work: the inbox is read once for the batch, each event's id is
added to it and its handler runs, and one commit covers them all. If anything in that
transaction fails, it is rolled back and the same events are handled one per transaction, where
a failing event is retried and finally dead-lettered without holding up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.db.errors import database_unavailable
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.envelope import Envelope, InvalidMessage, decode
from shared.kafka import inbox
from shared.kafka.dead_letters import DeadLetters
from shared.kafka.topics import TopicNames
from shared.observability import metrics
from shared.observability.logging import hot_logger
from shared.observability.tracing import continued_span, tracer
from shared.settings import ConsumerSettings

log = logging.getLogger(__name__)

OVERSIZED_KEPT_BYTES = 64 * 1024

# A handler gets the unit of work, the event and what ``prepare`` returned for it (or None).
Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]
# Work done before the transaction opens (remote look-ups), so no transaction waits on a network.
Prepare = Callable[[Envelope], Awaitable[Any]]
# Reads, in the batch's transaction, what its handlers will read one at a time (a few queries
# for the whole batch); what it returns is kept alive until the transaction ends. An event
# handled alone is preloaded as a batch of one.
Preload = Callable[[UnitOfWork, list[Envelope]], Awaitable[object]]


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    topic: str
    handler: Handler
    prepare: Prepare | None = None
    preload: Preload | None = None
    # The longest a fetch waits at the broker, when not CONSUMER_FETCH_MAX_WAIT_MS: longer for
    # a topic that is mostly quiet and not on an issue's path, since an idle consumer sends a
    # fetch every time one comes back empty.
    fetch_max_wait_ms: int | None = None


@dataclass(frozen=True, slots=True)
class _Event:
    record: ConsumerRecord
    envelope: Envelope


class EventProcessor:
    """Decodes, handles and dead-letters the records of one consumer group member."""

    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        uow_factory: UnitOfWorkFactory,
        settings: ConsumerSettings,
        names: TopicNames,
        group_id: str,
        beat: Callable[[], None],
    ) -> None:
        self.spec = spec
        self._uow_factory = uow_factory
        self._settings = settings
        self._names = names
        self._group_id = group_id
        self._beat = beat
        self._dead_letters = DeadLetters(
            consumer=spec.name, dlq_topic=names.dlq(spec.topic), uow_factory=uow_factory
        )
        self.processed = 0
        # Looked up once: the provider builds a new tracer on every look-up.
        self._tracer = tracer()
        # The metrics' children too: a label look-up on every event cost more than the count.
        self._consumed = {
            result: metrics.EVENTS_CONSUMED.labels(spec.name, spec.topic, result)
            for result in ("processed", "duplicate")
        }
        self._processing = metrics.PROCESSING_SECONDS.labels(spec.name)
        self._batch_sizes = metrics.BATCH_SIZE.labels("consume", spec.name)
        # The line written for every event, not through the standard library's records.
        self._event_log = hot_logger(__name__)

    async def process(
        self, records: list[ConsumerRecord], *, dlq: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        self._batch_sizes.observe(len(records))
        events = [
            event for record in records if (event := await self._decoded(record, dlq)) is not None
        ]
        if len(events) > 1 and await self._together(events):
            return
        for event in events:
            with self._span(event.record), _bound(event.envelope):
                await self._alone(event, dlq=dlq, stop=stop)

    async def _decoded(self, record: ConsumerRecord, dlq: AIOKafkaProducer) -> _Event | None:
        size = len(record.value or b"")
        limit = self._settings.max_record_bytes
        if size > limit:
            reason = f"record of {size} bytes is over the {limit} byte limit; not read"
            with self._span(record):
                await self._dead_letter(record, reason, dlq=dlq, keep=OVERSIZED_KEPT_BYTES)
            return None
        try:
            return _Event(record, decode(record.value, list(record.headers or ())))
        except InvalidMessage as exc:
            with self._span(record):
                await self._dead_letter(record, str(exc), dlq=dlq)
            return None

    async def _together(self, events: list[_Event]) -> bool:
        """Handle ``events`` in one transaction; False (nothing kept) if any part failed."""
        outcomes: list[tuple[_Event, str, float]] = []
        try:
            prepared = [await self._prepare(event.envelope) for event in events]
            async with self._uow_factory() as uow:
                fresh = await self._take(uow, {event.envelope.id for event in events})
                todo = [e.envelope for e in events if e.envelope.id in fresh]
                # Held (not read) until the function returns: the session keeps rows weakly.
                _preloaded = await self._preload(uow, todo)
                for event, ready in zip(events, prepared, strict=True):
                    self._beat()
                    started = time.perf_counter()
                    event_id = event.envelope.id
                    if event_id not in fresh:
                        outcomes.append((event, "duplicate", 0.0))
                        continue
                    fresh.discard(event_id)  # a second copy in this batch is a duplicate
                    with self._span(event.record), _bound(event.envelope):
                        await self.spec.handler(uow, event.envelope, ready)
                    outcomes.append((event, "processed", time.perf_counter() - started))
                await uow.commit()
        except Exception as exc:
            log.warning(
                "%s: a batch of %d events failed together (%s); handling them one at a time",
                self.spec.name,
                len(events),
                _describe(exc),
            )
            return False
        for event, result, elapsed in outcomes:
            self._done(event.envelope, result, elapsed)
        return True

    async def _take(self, uow: UnitOfWork, event_ids: set[str]) -> set[str]:
        """Record ``event_ids`` in this consumer's inbox, in the unit of work's transaction,
        before handling them; the ones it did not hold yet, which this transaction handles."""
        return await inbox.take(uow.session, self.spec.name, event_ids)

    async def _preload(self, uow: UnitOfWork, envelopes: list[Envelope]) -> object:
        """What the handlers of ``envelopes`` will read, read (and, where a consumer locks
        what it reads, locked) for all of them at once; one event alone is preloaded too."""
        return await self.spec.preload(uow, envelopes) if self.spec.preload else None

    async def _prepare(self, envelope: Envelope) -> Any:
        return await self.spec.prepare(envelope) if self.spec.prepare else None

    async def _alone(self, event: _Event, *, dlq: AIOKafkaProducer, stop: asyncio.Event) -> None:
        """One event in its own transaction: transient database errors are waited out, others
        retried ``max_attempts`` times, then the record is dead-lettered."""
        started = time.perf_counter()
        attempt = 0
        while True:
            self._beat()
            try:
                result = await self._handle_once(event.envelope)
                self._done(event.envelope, result, time.perf_counter() - started)
                return
            except InvalidMessage as exc:
                await self._dead_letter(event.record, str(exc), dlq=dlq)
                return
            except Exception as exc:
                if database_unavailable(exc):
                    log.warning("database unavailable, will retry %s: %s", event.envelope.id, exc)
                    if stop.is_set():
                        raise
                    backoff = self._settings.retry_backoff_s * 2 ** min(attempt, 6)
                    await asyncio.sleep(min(backoff, 10))
                    continue
                attempt += 1
                log.exception("handler failed for %s (attempt %d)", event.envelope.id, attempt)
                if attempt >= self._settings.max_attempts:
                    await self._dead_letter(event.record, _describe(exc), dlq=dlq)
                    return
                await asyncio.sleep(self._settings.retry_backoff_s * 2 ** (attempt - 1))

    async def _handle_once(self, envelope: Envelope) -> str:
        prepared = await self._prepare(envelope)
        async with self._uow_factory() as uow:
            if not await self._take(uow, {envelope.id}):
                return "duplicate"
            _preloaded = await self._preload(uow, [envelope])
            await self.spec.handler(uow, envelope, prepared)
            await uow.commit()
            return "processed"

    def _done(self, envelope: Envelope, result: str, elapsed: float) -> None:
        self._consumed[result].inc()
        self._processing.observe(elapsed)
        self.processed += 1
        # The event's ids given with the line, not bound for it: a binding costs more.
        self._event_log.info(
            f"event {result}",
            event_type=envelope.type,
            ms=round(elapsed * 1000, 1),
            **_ids(envelope),
        )

    def _span(self, record: ConsumerRecord) -> contextlib.AbstractContextManager[None]:
        def attributes() -> dict[str, str | int]:
            return {
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": self._group_id,
                "messaging.kafka.offset": record.offset,
            }

        return continued_span(
            self._tracer,
            f"{self.spec.topic} process",
            list(record.headers or ()),
            attributes=attributes,
        )

    async def _dead_letter(
        self,
        record: ConsumerRecord,
        reason: str,
        *,
        dlq: AIOKafkaProducer,
        keep: int | None = None,
    ) -> None:
        await self._dead_letters.park(
            record, reason, producer=dlq, source_topic=self.spec.topic, keep=keep
        )


def _bound(envelope: Envelope) -> contextlib.AbstractContextManager[Any]:
    """The ids every log line about this event carries."""
    return structlog.contextvars.bound_contextvars(**_ids(envelope))


def _ids(envelope: Envelope) -> dict[str, str | None]:
    issue_id = getattr(envelope.data, "issue_id", None)
    partner_id = getattr(envelope.data, "partner_id", None)
    return {
        "event_id": envelope.id,
        "issue_id": str(issue_id) if issue_id else None,
        "partner_id": str(partner_id) if partner_id else None,
    }


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
