"""JSON text for log lines and JSON columns: orjson, with the standard library behind it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from shared import jsontext


def test_text_is_compact_utf8_with_the_standard_librarys_reading() -> None:
    value = {"title": "Störung bei Exchange Online", "n": 3, "ok": True, "none": None}
    text = jsontext.dumps(value)
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert jsontext.loads(text) == value
    assert jsontext.loads(text.encode()) == value


def test_keys_that_are_not_strings_are_written_as_strings() -> None:
    assert json.loads(jsontext.dumps({1: "a", 2.5: "b"})) == {"1": "a", "2.5": "b"}


def test_uuids_and_datetimes_are_written_as_text() -> None:
    at = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    assert json.loads(jsontext.dumps([uuid.UUID(int=1), at])) == [
        str(uuid.UUID(int=1)),
        "2026-12-04T21:00:00+00:00",
    ]


def test_what_orjson_refuses_the_standard_library_takes() -> None:
    big = 2**70
    assert jsontext.dumps({"n": big}) == '{"n":1180591620717411303424}'
    assert jsontext.loads('{"n":1180591620717411303424}') == {"n": big}
    assert jsontext.loads('{"x": NaN}')["x"] != jsontext.loads('{"x": NaN}')["x"]


def test_a_value_json_cannot_hold_is_refused_without_a_default() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({"o": object()})
    assert jsontext.dumps({"o": object()}, default=lambda _: "opaque") == '{"o":"opaque"}'


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting property name"):
        jsontext.loads("{not json")
