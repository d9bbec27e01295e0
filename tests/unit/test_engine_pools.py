"""How many connections an engine may hold: the setting on PostgreSQL, one on SQLite."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.pool import QueuePool

from shared.db.engine import create_engine
from shared.settings import DatabaseSettings


def _size(settings: DatabaseSettings, **kwargs: int) -> int:
    engine = create_engine(settings, **kwargs)
    assert isinstance(engine.pool, QueuePool)
    return engine.pool.size()


def test_a_postgresql_engine_holds_the_pool_it_is_given() -> None:
    settings = DatabaseSettings(url="postgresql://escalation@127.0.0.1:1/none", pool_size=7)
    assert _size(settings) == 7
    assert _size(settings, pool_size=2) == 2


def test_a_sqlite_engine_holds_one_connection_whatever_the_setting(tmp_path: Path) -> None:
    """Transactions then queue in the process, each handed the connection as the last one
    ends, instead of inside SQLite's busy handler, which sleeps up to 100 ms at a time."""
    settings = DatabaseSettings(url=f"sqlite:///{tmp_path / 'escalation.db'}", pool_size=7)
    assert _size(settings) == 1
    assert _size(settings, pool_size=2) == 1


def test_the_pools_log_lines_are_sqlalchemys_as_the_stock_pools_are(tmp_path: Path) -> None:
    """Under "sqlalchemy", which logs from WARNING unless asked otherwise: a pool disposed of
    or recreated is not a line in the service's log."""
    settings = DatabaseSettings(url=f"sqlite:///{tmp_path / 'escalation.db'}")
    pool = create_engine(settings).pool
    logger = pool.logger
    name = logger.name if isinstance(logger, logging.Logger) else logger.logger.name
    assert name.startswith("sqlalchemy.pool.")
    assert not logging.getLogger(name).isEnabledFor(logging.INFO)
