"""Migrations apply and revert cleanly on an empty SQLite file and an empty PostgreSQL database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from shared.db import migrate
from shared.db.base import Base
from shared.db.engine import create_engine
from shared.db.models import __all__ as _models  # noqa: F401
from shared.settings import DatabaseSettings
from tests.support.database import DatabaseServer


async def _tables(url: str) -> set[str]:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _round_trip(url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, url, "head")
    assert await _tables(url) == set(Base.metadata.tables) | {"alembic_version"}
    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _tables(url) == {"alembic_version"}


async def test_migrations_upgrade_to_head_and_downgrade_to_base_on_sqlite(tmp_path: Path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")


async def test_migrations_upgrade_to_head_and_downgrade_to_base_on_postgresql(
    db_server: DatabaseServer,
) -> None:
    if db_server.is_sqlite:
        pytest.skip("no PostgreSQL server in this run")
    await _round_trip(await db_server.empty_database())


def _drift(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _assert_no_drift(url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, url, "head")
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as connection:
            drift = await connection.run_sync(_drift)
    finally:
        await engine.dispose()
    assert drift == [], f"models and migrations disagree: {drift}"


async def test_models_match_the_migrated_schema_on_sqlite(tmp_path: Path) -> None:
    await _assert_no_drift(f"sqlite+aiosqlite:///{tmp_path / 'drift.db'}")


async def test_models_match_the_migrated_schema_on_postgresql(db_server: DatabaseServer) -> None:
    if db_server.is_sqlite:
        pytest.skip("no PostgreSQL server in this run")
    await _assert_no_drift(await db_server.empty_database())
