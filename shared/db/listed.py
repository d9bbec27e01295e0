"""A list of values passed as one statement parameter, so a statement is the same for any length."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ColumnElement, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.selectable import TableValuedAlias


def listed(name: str, element: Any, dialect: str) -> TableValuedAlias:
    """The values of parameter ``name`` as rows of one column, ``value``: an array of
    ``element`` on PostgreSQL, a JSON array on SQLite (pass what JSON holds: UUIDs as the
    32 hex digits the models store there)."""
    if dialect == "postgresql":
        values = func.unnest(bindparam(name, type_=ARRAY(element))).table_valued("value")
        return values.render_derived(name=name)
    return func.json_each(bindparam(name, type_=JSON)).table_valued("value")


def among(column: Any, name: str, dialect: str, element: Any = None) -> ColumnElement[bool]:
    """``column`` is one of the values of parameter ``name`` (see :func:`listed`; ``element``:
    their type, the column's unless given)."""
    values = listed(name, column.type if element is None else element, dialect)
    return column.in_(select(values.c.value))  # type: ignore[no-any-return]
