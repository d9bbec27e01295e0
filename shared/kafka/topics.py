"""Topic names (with the configurable prefix) and idempotent topic creation."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.events.models import TOPICS
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
# The consumers that move an issue on, by name (a ConsumerSpec's); each has a group (group_id).
CLASSIFIER = "classifier"
NOTIFIER = "notifier"


def group_id(settings: KafkaSettings, consumer: str) -> str:
    """The consumer group of the consumer named ``consumer``."""
    return f"{settings.topic_prefix}csp-escalation.{consumer}"


class TopicNames:
    """Resolves logical topic names (``issues.received``) to physical ones (``prefix + name``)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def __call__(self, logical: str) -> str:
        return f"{self.prefix}{logical}"

    def dlq(self, logical: str) -> str:
        return f"{self.prefix}{logical}{DLQ_SUFFIX}"

    def all(self) -> list[str]:
        names = [self(t) for t in TOPICS]
        return names + [self.dlq(t) for t in TOPICS]


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create every topic and DLQ that is missing; existing ones are left as they are."""
    names = TopicNames(settings.topic_prefix)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )
    try:
        await admin.start()  # inside: a client that fails to start is closed too
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=1 if name.endswith(DLQ_SUFFIX) else settings.partitions,
                replication_factor=settings.replication_factor,
            )
            for name in names.all()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                log.debug("topics created concurrently by another process")
            log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()
