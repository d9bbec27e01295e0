"""The one producer configuration every service uses."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.settings import KafkaSettings


def create_producer(settings: KafkaSettings, *, service: str) -> AIOKafkaProducer:
    """acks=all without idempotence: consumers' inboxes remove duplicates, not the broker."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-{service}",
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=settings.request_timeout_ms,
        compression_type=None,
    )
