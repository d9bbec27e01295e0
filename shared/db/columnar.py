"""Rows of one INSERT sent as one statement on PostgreSQL, a column to a parameter.

asyncpg's ``executemany`` sends a batch's rows in one round trip, but PostgreSQL still runs the
statement once per row, and a consumer's batch writes a few rows of each kind per event. Passed
as arrays and read back with ``unnest``, the rows of a kind are one statement whatever their
number: about a quarter less of PostgreSQL's time per row written, for the same driver work.

Only INSERTs made by :func:`inserted` are sent so; the direct statements
(:mod:`shared.db.direct`) do it wherever such an INSERT has several rows to write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ClauseElement

BY_COLUMN = "rows_by_column"
# The position of each row among those passed, so that RETURNING gives the rows in their order.
_ORDINAL = "row_ordinal"


def inserted(table: Table, *columns: str) -> Insert:
    """``INSERT`` of ``columns``, each passed by name (and of the columns with Python-side
    defaults, as any INSERT); several rows at once go as one statement on PostgreSQL."""
    values: dict[str, Any] = {column: bindparam(column) for column in columns}
    return insert(table).values(**values).execution_options(**{BY_COLUMN: True})


def columnar_sql(statement: ClauseElement, names: Sequence[str], dialect: Dialect) -> str | None:
    """The SQL that writes the rows of ``statement``, an INSERT made by :func:`inserted`, from
    one array per parameter of ``names`` (those of its single-row form, in order), in their
    order, with its RETURNING; None for any other statement or database."""
    if dialect.name != "postgresql" or not isinstance(statement, Insert):
        return None
    if not statement.get_execution_options().get(BY_COLUMN):
        return None
    table = statement.table
    assert isinstance(table, Table)
    arrays = [bindparam(name, type_=ARRAY(table.c[name].type)) for name in names]
    rows = func.unnest(*arrays).table_valued(*names, with_ordinality=_ORDINAL).render_derived()
    source = select(*(rows.c[name] for name in names)).order_by(rows.c[_ORDINAL])
    bulk = insert(table).from_select(list(names), source)
    returned = list(statement.exported_columns)  # its RETURNING columns
    if returned:
        bulk = bulk.returning(*returned)
    return bulk.compile(dialect=dialect).string
