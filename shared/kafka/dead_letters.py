"""Parking a record on ``<topic>.dlq``, once per record.

A record is read again whenever its offset was not committed: a rebalance, a rebuilt client, a
crash. Valid events are then skipped by the inbox, but a record that was parked would be parked
again. So each parked record leaves a marker in the inbox, under ``<consumer>.dlq`` (apart from
the events the consumer processed) and named after the record itself: a digest of its place in
the log, its timestamp and its value. A record with a marker is passed over.

The marker is written after the DLQ has the record: a crash in between parks it twice, never not
at all. A record replayed from the DLQ is a new record and is judged afresh.
"""

from __future__ import annotations

import hashlib
import logging

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.db.base import utcnow
from shared.db.models import InboxRecord
from shared.db.uow import UnitOfWorkFactory
from shared.db.upsert import insert_if_absent
from shared.kafka import inbox
from shared.observability import metrics

log = logging.getLogger(__name__)


def parked_marker(record: ConsumerRecord) -> str:
    """The inbox id that says this very record was parked."""
    identity = hashlib.sha256(
        f"{record.topic}/{record.partition}/{record.offset}/{record.timestamp}/".encode()
        + (record.value or b"")
    )
    return identity.hexdigest()


def markers_of(consumer: str) -> str:
    """The inbox name under which ``consumer``'s parked records leave their markers."""
    return f"{consumer}.dlq"


class DeadLetters:
    """Parks one consumer's failed records on its topic's DLQ with why and where from."""

    def __init__(self, *, consumer: str, dlq_topic: str, uow_factory: UnitOfWorkFactory) -> None:
        self._consumer = consumer
        self._markers = markers_of(consumer)
        self._topic = dlq_topic
        self._uow_factory = uow_factory

    async def park(
        self,
        record: ConsumerRecord,
        reason: str,
        *,
        producer: AIOKafkaProducer,
        source_topic: str,
        keep: int | None = None,
    ) -> None:
        """Park ``record`` unless it was parked before; ``keep``: only its first bytes (it is too
        big to forward, and replaying it would only park it again)."""
        marker = parked_marker(record)
        if await self._parked_before(marker):
            log.info(
                "record was dead-lettered before; passed over",
                extra={"consumer": self._consumer, "source": _source(record)},
            )
            return
        value = record.value
        extra: list[tuple[str, bytes]] = []
        if keep is not None and value is not None and len(value) > keep:
            value = value[:keep]
            extra.append(("dlq.truncated_from", str(len(record.value)).encode()))
        headers = [
            *list(record.headers or ()),
            ("dlq.reason", reason[:2000].encode()),
            ("dlq.consumer", self._consumer.encode()),
            ("dlq.source", _source(record).encode()),
            ("dlq.failed_at", utcnow().isoformat().encode()),
            *extra,
        ]
        await producer.send_and_wait(self._topic, value=value, key=record.key, headers=headers)
        metrics.DLQ_RECORDS.labels(self._consumer, source_topic).inc()
        log.error(
            "record dead-lettered",
            extra={
                "consumer": self._consumer,
                "dlq_topic": self._topic,
                "reason": reason[:500],
                "source": _source(record),
            },
        )
        await self._mark(marker)

    async def _parked_before(self, marker: str) -> bool:
        """Whether the marker exists; when the database cannot say, the record is parked (a
        second copy on the DLQ is better than none)."""
        try:
            async with self._uow_factory() as uow:
                return bool(await inbox.held(uow.session, self._markers, {marker}))
        except Exception as exc:
            log.warning("could not check whether a record was dead-lettered before: %s", exc)
            return False

    async def _mark(self, marker: str) -> None:
        try:
            async with self._uow_factory() as uow:
                await insert_if_absent(
                    uow.session,
                    InboxRecord,
                    {"consumer": self._markers, "event_id": marker},
                    conflict=["consumer", "event_id"],
                )
                await uow.commit()
        except Exception as exc:
            log.warning("dead-lettered record not marked (it may be parked again): %s", exc)


def _source(record: ConsumerRecord) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"
