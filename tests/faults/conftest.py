"""The fault suite's own broker and stack per scenario (its summary hook is in the root
conftest, where the xdist controller finds it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka.embedded import EmbeddedBroker
from tests.faults.scenario import Fault, Runner, exercise
from tests.support.faults import Reconciliation
from tests.support.forkserver import ForkServer
from tests.support.stack import Stack


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A broker of the scenario's own, which it may stop and start."""
    async with EmbeddedBroker(log_path=tmp_path / "broker.log") as embedded:
        yield embedded


@pytest.fixture
async def fault_stack(
    broker: EmbeddedBroker,
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    forks: ForkServer,
) -> AsyncIterator[Stack]:
    """The three services on the scenario's own broker; stopped afterwards."""
    stack = Stack(database_url, broker.bootstrap_servers, topic_prefix, tmp_path, forks)
    try:
        yield stack
    finally:
        await stack.stop()


@pytest.fixture
def run_fault(
    request: pytest.FixtureRequest,
    fault_stack: Stack,
    broker: EmbeddedBroker,
    database_url: str,
    reader: AsyncEngine,
    topic_prefix: str,
) -> Runner:
    """Runs a fault scenario on this test's stack, broker, database and topics."""

    async def run(
        name: str, fault: Fault, *, load_s: float, expected_dead_letters: int = 0
    ) -> Reconciliation:
        return await exercise(
            name,
            fault,
            request=request,
            stack=fault_stack,
            broker=broker,
            database_url=database_url,
            engine=reader,
            topic_prefix=topic_prefix,
            load_s=load_s,
            expected_dead_letters=expected_dead_letters,
        )

    return run
