"""The fault suite's own broker per scenario, and the summary table at the end of the run."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.kafka.embedded import EmbeddedBroker
from tests.support.faults import SUMMARY_KEY, summary_table
from tests.support.stack import Stack


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A broker of the scenario's own, which it may stop and start."""
    async with EmbeddedBroker(log_path=tmp_path / "broker.log") as embedded:
        yield embedded


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = [
        json.loads(value)
        for outcome in ("passed", "failed")
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
