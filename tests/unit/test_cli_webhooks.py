"""``escalation webhooks redeliver`` refuses a time it cannot place before it reads anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from services.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("since", "says"),
    [("2026-12-06T01:00", "give an offset (Z for UTC)"), ("yesterday", "not an ISO 8601 time")],
)
def test_a_since_without_an_offset_or_not_a_time_is_refused(since: str, says: str) -> None:
    result = runner.invoke(
        app,
        ["webhooks", "redeliver", "--since", since],
        env={"DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none"},
    )
    assert result.exit_code == 2
    assert says in result.output
