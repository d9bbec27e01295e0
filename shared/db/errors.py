"""Telling "the database is not there right now" from "this statement is wrong"."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_CONNECTIVITY_WORDS = (
    "connection",
    "database is locked",
    "timeout",
    "terminat",
    "shutdown",
    "shutting down",
    "starting up",
    "recovery",
)
# SQLSTATE class 08 (connection exception) and 57P01-57P03 (shutdown, crash, cannot connect now).
_CONNECTIVITY_STATES = ("08", "57P01", "57P02", "57P03")


def is_connectivity(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    state = str(getattr(exc.orig, "sqlstate", "") or getattr(exc.orig, "pgcode", "") or "")
    if state.startswith(_CONNECTIVITY_STATES):
        return True
    text = str(exc.orig).lower()
    return any(word in text for word in _CONNECTIVITY_WORDS)


# The kinds of error that may mean "unavailable"; a DBAPIError only if it is about connectivity.
MAYBE_UNAVAILABLE: tuple[type[Exception], ...] = (
    DBAPIError,
    OSError,
    asyncio.TimeoutError,
    PoolTimeout,
)


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached, went away mid-statement, or no pooled connection
    came free in time (retry later)."""
    if isinstance(exc, DBAPIError):
        return is_connectivity(exc)
    return isinstance(exc, MAYBE_UNAVAILABLE)


def log_failed_pass(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """A periodic database pass that raised ``exc``: an outage (or no pooled connection free in
    time) is a warning, since the next pass tries again and ``/readyz`` reports the database;
    anything else is an error, with its traceback."""
    if database_unavailable(exc):
        logger.warning("%s skipped, database unavailable: %s", what, exc)
    else:
        logger.error("%s failed", what, exc_info=exc)
