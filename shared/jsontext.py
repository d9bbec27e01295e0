"""JSON text by orjson, for the places that would otherwise use the standard library's encoder
on every event (log lines, JSON columns); the standard library takes what orjson refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as compact UTF-8 JSON text. Keys that are not strings are written as strings,
    as the standard library does; an integer beyond 64 bits, which orjson refuses, sends the
    whole value through the standard library instead."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """The value of JSON text; what orjson refuses but the standard library reads (``NaN``, an
    integer beyond 64 bits) is read by the standard library."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
