"""Log lines: one JSON object per line, for our loggers and for libraries' alike."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from shared.observability.logging import (
    CORRELATION_KEYS,
    configure_logging,
    hot_logger,
    render_json,
)


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the configured handler writes; the root logger and structlog restored after."""
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(level="INFO", json=True)
        yield out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def test_a_line_is_json_with_the_correlation_keys_and_the_text_as_written(
    stream: io.StringIO,
) -> None:
    issue_id = uuid.uuid4()
    with structlog.contextvars.bound_contextvars(issue_id=str(issue_id)):
        logging.getLogger("services.classifier").info(
            "classified %s", "Exchange Online", extra={"tenant": uuid.UUID(int=7), "ms": 1.5}
        )
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "classified Exchange Online"
    assert record["issue_id"] == str(issue_id)
    assert all(key in record for key in (*CORRELATION_KEYS, "trace_id"))
    assert record["tenant"] == str(uuid.UUID(int=7))
    assert record["ms"] == 1.5
    assert record["level"] == "info"
    assert record["logger"] == "services.classifier"


def test_values_json_cannot_hold_are_still_written() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    class Described:
        def __structlog__(self) -> str:
            return "described"

    at = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    record = json.loads(
        render_json({"event": "Störung", "o": Opaque(), "d": Described(), "at": at})
    )
    assert record == {
        "event": "Störung",
        "o": "<opaque>",
        "d": "described",
        "at": "2026-12-04T21:00:00+00:00",
    }
    assert "Störung" in render_json({"event": "Störung"})  # not escaped
    # orjson refuses integers beyond 64 bits; the standard library writes the line instead.
    assert json.loads(render_json({"event": "big", "n": 2**70}))["n"] == 2**70


def test_an_exception_is_written_in_the_line(stream: io.StringIO) -> None:
    try:
        raise ValueError("unreadable payload")
    except ValueError:
        logging.getLogger("shared.kafka").exception("event failed")
    record = json.loads(stream.getvalue())
    assert record["event"] == "event failed"
    assert "ValueError: unreadable payload" in record["exception"]


def test_uvicorns_coloured_copy_of_its_message_is_not_written(stream: io.StringIO) -> None:
    # As uvicorn logs; under its own name, other tests' servers may have set that logger up.
    logging.getLogger("tests.server").info(
        "Started server process [%d]", 7, extra={"color_message": "\x1b[36m%d\x1b[0m"}
    )
    record = json.loads(stream.getvalue())
    assert record["event"] == "Started server process [7]"
    assert "color_message" not in record


def test_the_console_shows_only_the_correlation_keys_a_line_has(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stderr", stream)  # pytest's capture took it back after set-up
    configure_logging(level="INFO", json=False)
    with structlog.contextvars.bound_contextvars(issue_id="i-1"):
        logging.getLogger("services.notifier").info("routed")
    logging.getLogger("tests.server").info("Application startup complete.")
    about_issue, startup = stream.getvalue().splitlines()
    assert "issue_id=i-1" in about_issue
    assert "event_id" not in about_issue
    assert "None" not in startup


def test_a_hot_line_has_the_fields_of_a_stdlib_line_in_the_same_stream(
    stream: io.StringIO,
) -> None:
    hot = hot_logger("shared.kafka.processing")
    with structlog.contextvars.bound_contextvars(partner_id="p-1"):
        logging.getLogger("shared.kafka.processing").info("event %s", "processed")
        hot.info("event processed", event_type="csp.issue.updated", ms=1.5, issue_id="i-1")
        hot.debug("not at INFO")
    stdlib_line, hot_line = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(stdlib_line) <= set(hot_line)
    assert hot_line["event"] == stdlib_line["event"] == "event processed"
    assert hot_line["logger"] == "shared.kafka.processing"
    assert hot_line["level"] == "info"
    assert (hot_line["issue_id"], hot_line["partner_id"]) == ("i-1", "p-1")
    assert (hot_line["event_type"], hot_line["ms"]) == ("csp.issue.updated", 1.5)
    assert hot_line["timestamp"].endswith("Z")


def test_a_hot_line_on_the_console_shows_only_the_correlation_keys_it_has(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stderr", stream)  # pytest's capture took it back after set-up
    configure_logging(level="WARNING", json=False)
    hot = hot_logger("shared.kafka.processing")
    hot.info("event processed", issue_id="i-1")
    hot.warning("event slow", issue_id="i-2")
    [line] = stream.getvalue().splitlines()
    assert "event slow" in line
    assert "issue_id=i-2" in line
    assert "None" not in line


def test_a_stream_that_fails_drops_a_hot_line_and_not_the_caller(
    stream: io.StringIO,
) -> None:
    hot = hot_logger("shared.kafka.processing")
    stream.close()
    hot.info("event processed", issue_id="i-1")  # no ValueError: the event was handled
