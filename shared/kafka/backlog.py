"""What a consumer group has yet to take from a topic, for the reconciler to ask before it
re-drives an issue (:mod:`shared.reconciler`).

An issue can stay in ``received`` past the reconciler's timeout for two reasons: its event was
lost (a broker that kept its log in memory restarted, say), or it is still queued behind a
backlog the consumers have not worked off. Re-publishing it helps only in the first case; in
the second it adds a copy to the very queue that is late. A partition on which the group's
committed offset is short of the log end may still hold the event, so issues keyed there wait;
on any other partition the event is gone or was taken, and the issue is re-driven.

The embedded broker answers an end-offset query short of the true end when the last record
batch holds several records (:mod:`shared.kafka.offsets`); a partition then looks caught up a
little early, and its issues are re-driven as they would be without the check.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from shared.kafka.topics import TopicNames, group_id
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class Waiting:
    """A topic's partitions, and those on which a consumer group has records still to take."""

    partitions: tuple[int, ...]
    behind: frozenset[int]

    def holds(self, key: str) -> bool:
        """Whether a record keyed ``key`` (in the producer's partition for it) may still be
        waiting for the group."""
        if not self.behind:
            return False
        partition = _PARTITIONER(key.encode(), list(self.partitions), list(self.partitions))
        return partition in self.behind


class GroupBacklog:
    """Asks the broker how far a consumer group has committed on a topic's partitions."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._names = TopicNames(kafka.topic_prefix)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def waiting(self, topic: str, consumer: str) -> Waiting | None:
        """Where ``consumer``'s group is behind on ``topic`` (logical names); None when the
        broker does not answer in time, and the caller acts as if nothing were queued."""
        try:
            async with asyncio.timeout(self._kafka.request_timeout_ms / 1000):
                return await self._ask(self._names(topic), group_id(self._kafka, consumer))
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("consumer group backlog on %s not known: %r", topic, exc)
            await self.close()
            return None

    async def _ask(self, topic: str, group: str) -> Waiting | None:
        admin, consumer = await self._clients()
        await consumer.topics()  # fresh metadata: a topic made again may have new partitions
        known = consumer.partitions_for_topic(topic)
        if not known:
            return None
        partitions = tuple(sorted(known))
        tps = [TopicPartition(topic, p) for p in partitions]
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        behind = set()
        for tp in tps:
            meta = committed.get(tp)
            taken = meta.offset if meta is not None and meta.offset >= 0 else -1
            if ends[tp] > max(taken, starts[tp]):
                behind.add(tp.partition)
        return Waiting(partitions, frozenset(behind))

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            await self.close()
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._kafka.bootstrap_servers,
                client_id=f"{self._kafka.client_id}-reconciler",
                request_timeout_ms=self._kafka.request_timeout_ms,
            )
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._kafka.bootstrap_servers,
                client_id=f"{self._kafka.client_id}-reconciler",
                request_timeout_ms=self._kafka.request_timeout_ms,
                enable_auto_commit=False,
            )
            self._admin, self._consumer = admin, consumer
            await admin.start()
            await consumer.start()
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        try:
            if consumer is not None:
                await consumer.stop()
            if admin is not None:
                await admin.close()
        except Exception:
            log.debug("closing the backlog's clients failed", exc_info=True)
