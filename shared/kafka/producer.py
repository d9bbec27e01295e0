"""The one producer configuration every service uses."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shared.settings import KafkaSettings

_PARTITIONER = DefaultPartitioner()


def key_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of ``partitions`` (sorted) the producer itself gives a record keyed ``key``."""
    partition: int = _PARTITIONER(key, partitions, partitions)
    return partition


def create_producer(settings: KafkaSettings, *, service: str) -> AIOKafkaProducer:
    """acks=all without idempotence: consumers' inboxes remove duplicates, not the broker."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-{service}",
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=settings.producer_batch_bytes,
        request_timeout_ms=settings.request_timeout_ms,
        compression_type=None,
    )
