"""Session-wide broker and database server; per-test database, topic prefix and stack."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db.engine import create_engine
from shared.ports import use_port_range, worker_slice
from shared.settings import DatabaseSettings
from tests.support.broker import any_broker
from tests.support.database import DatabaseServer, database_server, take_selection
from tests.support.faults import SUMMARY_KEY, summary_table
from tests.support.forkserver import ForkServer
from tests.support.launch import ESCALATION
from tests.support.stack import Stack


def pytest_configure(config: pytest.Config) -> None:
    """``DATABASE_URL`` picks the database server and no test's settings (before xdist starts
    its workers, which inherit the move). Each xdist worker hands out loopback ports from its
    own slice, so two workers never give one port to two services."""
    take_selection()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and count > 1:
        run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
        use_port_range(*worker_slice(int(worker[2:]), count), seed=run)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tier comes from the folder, so every test has exactly one tier marker."""
    for item in items:
        for tier in ("unit", "integration", "e2e", "faults"):
            if f"/tests/{tier}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, tier))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suite's table, from the rows its scenarios attach to their reports."""
    rows = [
        json.loads(value)
        for outcome in ("passed", "failed", "xpassed", "xfailed")
        for report in terminalreporter.stats.get(outcome, [])
        for key, value in getattr(report, "user_properties", [])
        if key == SUMMARY_KEY
    ]
    if not rows:
        return
    rows.sort(key=lambda r: r["scenario"])
    lines = summary_table(rows)
    terminalreporter.write_sep("=", "fault suite")
    for line in lines:
        terminalreporter.write_line(line)
    target = os.environ.get("FAULTS_SUMMARY")
    if target:
        Path(target).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("csp")


@pytest.fixture(scope="session")
def forks(workdir: Path) -> Iterator[ForkServer]:
    """Forks this test process's service processes (started when a test first needs one)."""
    server = ForkServer(workdir, ESCALATION)
    yield server
    server.close()


@pytest.fixture(scope="session")
async def bootstrap_servers(workdir: Path) -> AsyncIterator[str]:
    async with any_broker(workdir) as servers:
        yield servers


@pytest.fixture(scope="session")
async def db_server(workdir: Path) -> AsyncIterator[DatabaseServer]:
    async with database_server(workdir) as server:
        yield server


@pytest.fixture
async def database_url(db_server: DatabaseServer) -> AsyncIterator[str]:
    url = await db_server.new_database()
    yield url
    await db_server.release(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def reader(database_url: str, engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """For polling while services write. On SQLite a plain engine: its deferred read
    transactions never wait for the services' write lock (WAL), unlike the services' own
    ``BEGIN IMMEDIATE``."""
    if not database_url.startswith("sqlite"):
        yield engine
        return
    plain = create_async_engine(database_url)
    yield plain
    await plain.dispose()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
async def stack(
    database_url: str, bootstrap_servers: str, topic_prefix: str, tmp_path: Path, forks: ForkServer
) -> AsyncIterator[Stack]:
    """All three services against this test's database and topics; stopped afterwards."""
    stack = Stack(database_url, bootstrap_servers, topic_prefix, tmp_path, forks)
    try:
        yield stack
    finally:
        await stack.stop()
