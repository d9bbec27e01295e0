"""Which database errors mean "unavailable, retry" (503 at the intake, retry in consumers)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db.errors import database_unavailable, log_failed_pass


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "error",
    [
        DBAPIError("connect", {}, _DriverError("the database system is shutting down", "57P03")),
        DBAPIError("connect", {}, _DriverError("the database system is starting up")),
        DBAPIError("select", {}, _DriverError("terminating connection", "57P01")),
        InterfaceError("select", {}, _DriverError("connection is closed")),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        # Every pooled connection busy for longer than DATABASE_POOL_TIMEOUT_S.
        PoolTimeout("QueuePool limit of size 10 overflow 0 reached, connection timed out"),
    ],
)
def test_an_unreachable_restarting_or_busy_database_is_unavailable(error: Exception) -> None:
    assert database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("insert", {}, _DriverError("duplicate key value", "23505")),
        DBAPIError("select", {}, _DriverError('column "x" does not exist', "42703")),
        ValueError("not a database error"),
    ],
)
def test_a_wrong_statement_is_not_an_outage(error: Exception) -> None:
    assert not database_unavailable(error)


def test_a_periodic_pass_that_meets_an_outage_warns_and_one_that_breaks_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.pass")
    with caplog.at_level(logging.WARNING, logger="tests.pass"):
        log_failed_pass(log, "sweep", PoolTimeout("QueuePool limit of size 1 overflow 0 reached"))
        log_failed_pass(log, "sweep", ValueError("a bug"))
    outage, fault = caplog.records
    assert (outage.levelno, outage.exc_info) == (logging.WARNING, None)
    assert "sweep skipped, database unavailable" in outage.getMessage()
    assert fault.levelno == logging.ERROR
    assert fault.getMessage() == "sweep failed"
    assert fault.exc_info is not None
    assert isinstance(fault.exc_info[1], ValueError)
