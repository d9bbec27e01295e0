"""A list of values passed as one statement parameter, so a statement is the same for any length."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, Select, Table, bindparam, func, select, true
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


def listed_ids(ids: Iterable[uuid.UUID], dialect: str) -> list[Any]:
    """UUIDs as a parameter of :func:`listed` takes them: as they are on PostgreSQL, as the 32
    hex digits the models store on SQLite; each once."""
    unique = dict.fromkeys(ids)
    return list(unique) if dialect == "postgresql" else [key.hex for key in unique]


def among(column: Any, name: str, dialect: str, element: Any = None) -> ColumnElement[bool]:
    """``column`` is one of the values of parameter ``name`` (see :func:`listed`; ``element``:
    their type, the column's unless given). On PostgreSQL, for tables that stay small: see
    :func:`keyed`."""
    values = listed(name, column.type if element is None else element, dialect)
    return column.in_(select(values.c.value))  # type: ignore[no-any-return]


def keyed(
    table: Table,
    column: str,
    dialect: str,
    *,
    locked: bool = False,
    columns: Sequence[str] | None = None,
) -> Select[Any]:
    """The columns (all unless ``columns`` are named) of the rows of ``table`` whose
    ``column``, a unique one, holds one of the values of parameter ``keys`` (see
    :func:`listed`), for direct statements (:mod:`shared.db.direct`); ``locked``: each row
    ``FOR UPDATE`` on PostgreSQL, in the order of the keys (SQLite's writers take the whole
    database).

    PostgreSQL keeps the plan of a prepared statement once it has run a few times. For
    ``column IN (…)`` made while the table was nearly empty, as in a new database, that plan
    is a sequential scan, and it stays one as the table grows. Here each key is its own
    ``LIMIT 1`` sub-select, joined laterally: PostgreSQL cannot merge it into a scan of the
    table and looks each key up in the column's index, at any size. Elsewhere ``IN``.
    """
    chosen = [table.c[name] for name in columns] if columns else [table]
    if dialect != "postgresql":
        return select(*chosen).where(among(table.c[column], "keys", dialect))
    values = listed("keys", table.c[column].type, "postgresql")
    matching = select(*chosen).where(table.c[column] == values.c.value).limit(1)
    one = (matching.with_for_update() if locked else matching).lateral()
    return select(*one.c).select_from(values).join(one, true())


def paired(
    table: Table,
    columns: tuple[str, str],
    params: tuple[str, str],
    dialect: str,
    *,
    chosen: Sequence[str],
) -> Select[Any]:
    """The ``chosen`` columns of the rows of ``table`` whose two ``columns``, together unique,
    hold a pair of the values of parameters ``params``: two lists in step on PostgreSQL, each
    pair its own ``LIMIT 1`` look-up in their index (as :func:`keyed`); elsewhere both lists
    narrow the index (see :func:`listed`), and the caller picks the pairs it asked for."""
    first, second = (table.c[name] for name in columns)
    selected = [table.c[name] for name in chosen]
    if dialect != "postgresql":
        return select(*selected).where(
            among(first, params[0], dialect), among(second, params[1], dialect)
        )
    pairs = (
        func.unnest(
            bindparam(params[0], type_=ARRAY(first.type)),
            bindparam(params[1], type_=ARRAY(second.type)),
        )
        .table_valued(*columns)
        .render_derived(name="pairs")
    )
    matching = (
        select(*selected)
        .where(first == pairs.c[columns[0]])
        .where(second == pairs.c[columns[1]])
        .limit(1)
        .lateral()
    )
    return select(*matching.c).select_from(pairs).join(matching, true())
