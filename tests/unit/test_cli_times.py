"""The CLI's listings (``keys list``, ``webhooks list``) show every moment the same way: in UTC,
and say so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from services.cli_admin import when


def test_a_moment_is_shown_in_utc_whatever_zone_it_came_in() -> None:
    paris = timezone(timedelta(hours=1))
    assert when(datetime(2026, 12, 7, 1, 40, tzinfo=paris)) == "2026-12-07 00:40 UTC"
    assert when(datetime(2026, 12, 7, 0, 40, tzinfo=UTC)) == "2026-12-07 00:40 UTC"


def test_a_moment_without_a_zone_is_taken_as_utc_and_none_is_never() -> None:
    # SQLite gives back the UTC times the services wrote without their zone.
    assert when(datetime(2026, 12, 7, 0, 40)) == "2026-12-07 00:40 UTC"
    assert when(None) == "never"
