"""What a consumer group has certainly not taken from a topic yet, for the reconciler to ask
before it re-drives an issue (:mod:`shared.reconciler`).

An issue can stay in ``received`` past the reconciler's timeout for two reasons: its event was
lost (a broker that kept its log in memory restarted, say), or it is still queued behind a
backlog the consumers have not worked off. Re-publishing it helps only in the first case; in
the second it adds a copy to the very queue that is late. The broker can tell them apart by
time: the first record of the issue's partition published at or after a moment before the
event's (the issue's status change) sits at or before the event's own offset, so while the
group's committed offset has not passed that record, the event is still ahead of it. Any other
answer (nothing published since, no offset committed, the group past that record, no answer)
re-drives, as the reconciler would without asking: at worst a copy its inbox skips. The
reconciler trusts a "still queued" for ``RECONCILER_QUEUED_WAIT_S`` only.

Committed offsets are compared, so a group that has taken a record but not yet committed it
counts as behind for up to ``CONSUMER_COMMIT_INTERVAL_MS``; timestamps are the producers'
clocks against the database's, which a deployment keeps in step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.kafka.producer import key_partition
from shared.kafka.topics import TopicNames, group_id
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)


class GroupBacklog:
    """Asks the broker how far a consumer group has committed on a topic's partitions."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._names = TopicNames(kafka.topic_prefix)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def queued(
        self, topic: str, consumer: str, published: Mapping[str, datetime]
    ) -> set[str] | None:
        """Of ``published``'s keys, each with a moment no later than its record's publication,
        those whose record ``consumer``'s group has certainly not taken from ``topic`` (logical
        names) if it is there; None when the broker does not answer in time."""
        if not published:
            return set()
        try:
            async with asyncio.timeout(self._kafka.request_timeout_ms / 1000):
                return await self._ask(
                    self._names(topic), group_id(self._kafka, consumer), published
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("consumer group backlog on %s not known: %r", topic, exc)
            await self.close()
            return None

    async def _ask(self, topic: str, group: str, published: Mapping[str, datetime]) -> set[str]:
        admin, consumer = await self._clients()
        await consumer.topics()  # fresh metadata: a topic made again may have new partitions
        known = consumer.partitions_for_topic(topic)
        if not known:
            return set()
        partitions = sorted(known)
        keyed = {key: key_partition(key.encode(), partitions) for key in published}
        # Per partition, the earliest of its keys' moments: every key there is at least as late.
        since: dict[TopicPartition, datetime] = {}
        for key, partition in keyed.items():
            tp = TopicPartition(topic, partition)
            since[tp] = min(since.get(tp, published[key]), published[key])
        committed = await admin.list_consumer_group_offsets(group, partitions=list(since))
        taken = {
            tp: meta.offset
            for tp, meta in committed.items()
            if meta is not None and meta.offset >= 0 and tp in since
        }
        if not taken:
            return set()
        first = await consumer.offsets_for_times(
            {tp: int(since[tp].timestamp() * 1000) for tp in taken}
        )
        behind = {
            tp.partition
            for tp, offset in taken.items()
            # A broker that has no such record answers None (the embedded one: timestamp -1).
            if (found := first.get(tp)) is not None
            and found.timestamp >= 0
            and offset <= found.offset
        }
        return {key for key, partition in keyed.items() if partition in behind}

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
        """Close both clients; one that fails to close does not leave the other open."""
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            await _quietly(consumer.stop())
        if admin is not None:
            await _quietly(admin.close())


async def _quietly(closing: Awaitable[None]) -> None:
    try:
        await closing
    except Exception:
        log.debug("closing the backlog's clients failed", exc_info=True)
