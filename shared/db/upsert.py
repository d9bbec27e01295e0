"""``INSERT … ON CONFLICT DO NOTHING`` for both backends: the DB decides who wins a race."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from shared.db.base import table_of

Model = TypeVar("Model", bound=DeclarativeBase)


async def insert_if_absent(
    session: AsyncSession,
    model: type[DeclarativeBase],
    values: dict[str, Any],
    *,
    conflict: list[str],
) -> bool:
    """Insert one row unless one with the same ``conflict`` columns exists; True if inserted."""
    dialect = session.get_bind().dialect.name
    statement = insert_ignoring(dialect, table_of(model), tuple(conflict))
    result = await session.execute(statement, values)
    return bool(getattr(result, "rowcount", 0))


async def insert_or_get(
    session: AsyncSession, model: type[Model], values: dict[str, Any], *, conflict: list[str]
) -> tuple[Model, bool]:
    """Insert one row unless one with the same ``conflict`` columns exists; that row as an ORM
    object either way, and whether it was inserted. One round trip when it is inserted (its
    ``RETURNING`` is the object), a second only to read the one that was there."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(model)
        .values(values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(model)
    )
    inserted = (await session.scalars(statement)).one_or_none()
    if inserted is not None:
        return inserted, True
    existing = select(model).filter_by(**{column: values[column] for column in conflict})
    return (await session.scalars(existing)).one(), False


@cache
def insert_ignoring(dialect: str, table: Table, conflict: tuple[str, ...]) -> Insert:
    """Built once per table and key: the values travel as parameters, so each call skips
    building the statement and its cache key."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(conflict))
