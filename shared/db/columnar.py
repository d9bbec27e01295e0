"""Many runs of one statement sent as one on PostgreSQL, each parameter an array of its values.

asyncpg's ``executemany`` sends a batch's rows in one round trip, but PostgreSQL still runs the
statement once per row, and a consumer's batch writes a few rows of each kind per event. Passed
as arrays and read back with ``unnest``, the rows of a kind are one statement whatever their
number: about a quarter less of PostgreSQL's time per row written, for the same driver work.

A statement goes so when it says how (:func:`by_column`): a function that builds, from the
rows as a table (:data:`ORDINAL` numbering them in the order given), the statement that does
for all of them what the statement does for one, and returns what it returns, a row per run
in that order. :func:`inserted` makes INSERTs that do, :func:`updated` UPDATEs of a row by its
key, :func:`deleted` DELETEs of one. The direct statements (:mod:`shared.db.direct`) use it
wherever such a statement has several runs to make.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    Delete,
    Insert,
    Table,
    Update,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.sql.selectable import TableValuedAlias

_OPTION = "rows_by_column"
# The position of each row among those given, so that what the rows return keeps their order.
ORDINAL = "row_ordinal"
# Gets the single-run statement and its runs' parameters as rows (a column per parameter, named
# like it, and ORDINAL); gives the statement for all of them.
AllRows = Callable[[Any, TableValuedAlias], ClauseElement]
S = TypeVar("S", bound=Executable)


def by_column(statement: S, all_rows: AllRows) -> S:
    """``statement``, whose runs go together on PostgreSQL as the statement ``all_rows``
    builds."""
    return statement.execution_options(**{_OPTION: all_rows})


def inserted(table: Table, *columns: str) -> Insert:
    """``INSERT`` of ``columns``, each passed by name (and of the columns with Python-side
    defaults, as any INSERT); several rows at once go as one statement on PostgreSQL, and a
    RETURNING gives a row for each, in their order."""
    values: dict[str, Any] = {column: bindparam(column) for column in columns}
    return by_column(insert(table).values(**values), _insert_all)


def _insert_all(statement: Insert, rows: TableValuedAlias) -> ClauseElement:
    table = statement.table
    names = [column.key for column in rows.c if column.key != ORDINAL]
    source = select(*(rows.c[name] for name in names)).order_by(rows.c[ORDINAL])
    bulk = insert(table).from_select(names, source)
    returned = list(statement.exported_columns)  # its RETURNING columns
    return bulk.returning(*returned) if returned else bulk


def updated(table: Table, key: str, *columns: str, by: str) -> Update:
    """``UPDATE`` of ``columns`` (each passed by name) in the row whose ``key``, a unique
    column, is parameter ``by``; several rows at once go as one statement on PostgreSQL, where
    a row given twice ends as the later run leaves it, as when they run one after the other.

    There each row is found as one look-up in ``key``'s index and changed where that look-up
    found it (its ``ctid``), whatever the table's size when PostgreSQL planned the statement:
    matched as a join, the rows were planned as a scan of a table that was empty then. So a row
    another transaction changed meanwhile is left as it was: the caller holds the rows locked
    (``FOR UPDATE``), as the issue lifecycle's callers do, or can leave such a row to whoever
    changed it, as the outbox relay can (see ``shared.kafka.outbox._changing``)."""
    values: dict[str, Any] = {column: bindparam(column) for column in columns}
    statement = update(table).where(table.c[key] == bindparam(by)).values(**values)
    return by_column(statement, partial(_update_every, table, key, by))


def _update_every(
    table: Table,
    key: str,
    by: str,
    _one: Update,
    rows: TableValuedAlias,
) -> ClauseElement:
    latest = (
        select(rows)
        .ext(distinct_on(rows.c[by]))
        .order_by(rows.c[by], rows.c[ORDINAL].desc())
        .subquery("latest")
    )
    found = _found(table, key, latest.c[by])
    # Every column the single row's statement sets: those named, and any it sets by itself.
    columns = tuple(column.key for column in rows.c if column.key not in (by, ORDINAL))
    pairs = (
        select(*(latest.c[column] for column in columns), found.c.tid)
        .select_from(latest.join(found, true()))
        .subquery("pairs")
    )
    return (
        update(table)
        .values({column: pairs.c[column] for column in columns})
        .where(literal_column(f"{table.name}.ctid") == pairs.c.tid)
    )


def deleted(table: Table, key: str, *, by: str) -> Delete:
    """``DELETE`` of the row whose ``key``, a unique column, is parameter ``by``; several rows
    at once go as one statement on PostgreSQL, each found as one look-up in ``key``'s index
    (see :func:`updated`). A row not there (deleted meanwhile) is no error."""
    statement = delete(table).where(table.c[key] == bindparam(by))
    return by_column(statement, partial(_delete_every, table, key, by))


def _delete_every(
    table: Table,
    key: str,
    by: str,
    _one: Delete,
    rows: TableValuedAlias,
) -> ClauseElement:
    found = _found(table, key, rows.c[by])
    doomed = select(found.c.tid).select_from(rows.join(found, true())).subquery("doomed")
    return delete(table).where(literal_column(f"{table.name}.ctid") == doomed.c.tid)


def _found(table: Table, key: str, value: Any) -> Any:
    """The ``ctid`` of ``table``'s row whose ``key`` is ``value``, as a lateral look-up."""
    target = table.alias("found_row")
    return (
        select(literal_column(f"{target.name}.ctid").label("tid"))
        .select_from(target)
        .where(target.c[key] == value)
        .limit(literal_column("1"))  # one look-up each, never merged into a join
        .lateral("found")
    )


def columnar_sql(compiled: SQLCompiler, dialect: Dialect) -> str | None:
    """The SQL of all runs of ``compiled``'s statement at once, taking one array per parameter
    in the order of its own; None for a statement that does not say how (:func:`by_column`),
    and on any database but PostgreSQL."""
    statement = compiled.statement
    if not isinstance(statement, Executable) or dialect.name != "postgresql":
        return None
    all_rows: AllRows | None = statement.get_execution_options().get(_OPTION)
    if all_rows is None:
        return None
    names = list(compiled.positiontup or ())
    arrays = [bindparam(name, type_=ARRAY(compiled.binds[name].type)) for name in names]
    rows = func.unnest(*arrays).table_valued(*names, with_ordinality=ORDINAL).render_derived()
    bulk = all_rows(statement, rows).compile(dialect=dialect)
    assert isinstance(bulk, SQLCompiler)
    if list(bulk.positiontup or ()) != names:
        raise ValueError(f"the statement for all rows must take each array once, in order: {names}")
    return bulk.string
