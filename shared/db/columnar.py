"""Many runs of one statement sent as one on PostgreSQL, each parameter an array of its values.

asyncpg's ``executemany`` sends a batch's rows in one round trip, but PostgreSQL still runs the
statement once per row, and a consumer's batch writes a few rows of each kind per event. Passed
as arrays and read back with ``unnest``, the rows of a kind are one statement whatever their
number: about a quarter less of PostgreSQL's time per row written, for the same driver work.

A statement goes so when it says how (:func:`by_column`): a function that builds, from the
rows as a table (:data:`ORDINAL` numbering them in the order given), the statement that does
for all of them what the statement does for one, and returns what it returns, a row per run
in that order. :func:`inserted` makes INSERTs that do. The direct statements
(:mod:`shared.db.direct`) use it wherever such a statement has several runs to make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Insert, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
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
