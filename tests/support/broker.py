"""Finding a broker: KAFKA_BOOTSTRAP_SERVERS, testcontainers Kafka, else embedded Tansu."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from shared.kafka.embedded import EmbeddedBroker
from tests.support.docker import docker_available


@asynccontextmanager
async def any_broker(log_dir: Path) -> AsyncIterator[str]:
    """Yield bootstrap servers of the first broker found, in the documented order."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield container.get_bootstrap_server()
        return
    async with EmbeddedBroker(log_path=log_dir / "broker.log") as broker:
        yield broker.bootstrap_servers
