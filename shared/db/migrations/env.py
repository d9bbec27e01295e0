"""Alembic environment: async engine, batch mode (SQLite), the models' naming convention."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from shared.db.base import Base
from shared.db.engine import create_engine
from shared.db.models import __all__ as _registered  # noqa: F401 - registers every table
from shared.settings import DatabaseSettings

config = context.config


def _settings() -> DatabaseSettings:
    url = config.get_main_option("sqlalchemy.url")
    return DatabaseSettings(url=url) if url else DatabaseSettings()


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a SQLite table as a copy: dropping the original would fail, or
        # cascade, while other tables' rows refer to it. Switched off outside the transaction
        # (SQLite ignores it inside one) and checked as a whole before the commit instead.
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if dangling:
                raise RuntimeError(f"rows refer to rows that are not there: {dangling[:10]}")
    if sqlite:
        _pragma(connection, "PRAGMA foreign_keys=ON")


def _pragma(connection: Connection, statement: str) -> None:
    """On the driver's connection as it is, beginning no transaction."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


async def _run_online() -> None:
    engine = create_engine(_settings())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=_settings().url, target_metadata=Base.metadata, render_as_batch=True, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    asyncio.run(_run_online())
