"""The fault suite's own broker and stack per scenario (its summary hook is in the root
conftest, where the xdist controller finds it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.kafka.embedded import EmbeddedBroker
from tests.support.stack import Stack


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A broker of the scenario's own, which it may stop and start."""
    async with EmbeddedBroker(log_path=tmp_path / "broker.log") as embedded:
        yield embedded


@pytest.fixture
async def fault_stack(
    broker: EmbeddedBroker, database_url: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    """The three services on the scenario's own broker; stopped afterwards."""
    stack = Stack(database_url, broker.bootstrap_servers, topic_prefix, tmp_path)
    try:
        yield stack
    finally:
        await stack.stop()
