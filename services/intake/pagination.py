"""Opaque keyset cursors: ``(created_at, id)`` of the last item of a page, newest first."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from services.intake.problems import Problem, invalid_field


def _foreign_cursor() -> Problem:
    return invalid_field("query.cursor", "not a cursor from this API", "cursor")


def encode_cursor(created_at: datetime, item_id: object) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{item_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, item_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), item_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise _foreign_cursor() from exc


def after_cursor(
    created_column: Any, id_column: Any, cursor: str, id_type: type = str
) -> ColumnElement[bool]:
    """Rows strictly after the cursor in ``created desc, id desc`` order."""
    created, item_id = decode_cursor(cursor)
    try:
        key = id_type(item_id)
    except ValueError as exc:
        raise _foreign_cursor() from exc
    return or_(created_column < created, and_(created_column == created, id_column < key))


async def keyset_page(
    session: AsyncSession,
    query: Select[*tuple[Any, ...]],
    created_column: Any,
    id_column: Any,
    *,
    limit: int,
    cursor: str | None,
    id_type: type = str,
    rows: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of ``query`` newest first, and the cursor of the next page (None on the last).

    With ``rows`` the query selects several entities and the page holds row tuples whose first
    entity carries the keyset columns.
    """
    if cursor:
        query = query.where(after_cursor(created_column, id_column, cursor, id_type))
    query = query.order_by(created_column.desc(), id_column.desc()).limit(limit + 1)
    found: list[Any] = (
        list((await session.execute(query)).all()) if rows else list(await session.scalars(query))
    )
    page = found[:limit]
    if len(found) <= limit:
        return page, None
    last = page[-1][0] if rows else page[-1]
    return page, encode_cursor(getattr(last, created_column.key), getattr(last, id_column.key))
