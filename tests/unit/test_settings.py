"""Settings fail fast on nonsense."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.settings import AppSettings, DatabaseSettings, KafkaSettings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert DatabaseSettings(url=given).url == expected


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValidationError, match="PostgreSQL or SQLite"):
        DatabaseSettings(url="mysql://root@localhost/test")


def test_a_heartbeat_longer_than_a_third_of_the_session_is_refused() -> None:
    with pytest.raises(ValidationError, match="HEARTBEAT"):
        KafkaSettings(session_timeout_ms=3000, heartbeat_interval_ms=2000)


def test_production_requires_an_api_key_pepper() -> None:
    with pytest.raises(ValidationError, match="PEPPER"):
        AppSettings(environment="production")
    assert AppSettings(environment="production", api_key_pepper=SecretStr("x" * 16))


def test_the_default_webhook_retries_span_more_than_a_day_even_with_the_shortest_jitter() -> None:
    from shared.settings import WebhookSettings

    s = WebhookSettings()
    steps = [
        min(s.backoff_cap_s, s.backoff_base_s * 2 ** (n - 1)) for n in range(1, s.max_attempts)
    ]
    assert sum(steps) * 0.5 >= 24 * 3600
