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
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


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
