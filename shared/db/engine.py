"""Engine and session factory, built in a service's lifespan and disposed there."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.pool import ConnectionPoolEntry

from shared import jsontext
from shared.db.direct import Direct
from shared.db.fair_pool import FairPool
from shared.db.staged import DIRECT, StagingSession
from shared.db.write_gate import ProcessGate, gate_for
from shared.settings import DatabaseSettings


def create_engine(settings: DatabaseSettings, *, pool_size: int | None = None) -> AsyncEngine:
    """An async engine for PostgreSQL (asyncpg) or SQLite (aiosqlite), with ``pool_size``
    connections (the settings' unless given).

    SQLite transactions start with ``BEGIN IMMEDIATE``: several processes share the file, and a
    deferred transaction that later needs the write lock fails at once instead of waiting.
    A SQLite engine has one connection, whatever ``pool_size`` says: the file has one writer
    anyway, and a transaction queued for the pool is handed the connection the moment the one
    before it ends, where one queued for the lock inside SQLite (its busy handler) sleeps in
    growing steps of up to 100 ms and wakes to find it taken again. No task waits for the pool
    longer than a second while others go first (:mod:`shared.db.fair_pool`).
    """
    pool: dict[str, Any] = {
        "poolclass": FairPool,
        "pool_size": pool_size or settings.pool_size,
        "max_overflow": 0,
        "pool_timeout": settings.pool_timeout_s,
    }
    if settings.is_sqlite:
        return _sqlite_engine(settings, {**pool, "pool_size": 1})
    timeout_ms = str(int(settings.statement_timeout_s * 1000))
    return create_async_engine(
        settings.url,
        echo=settings.echo,
        **pool,
        **_JSON_COLUMNS,
        pool_pre_ping=False,
        connect_args={
            "server_settings": {"statement_timeout": timeout_ms},
            "command_timeout": settings.statement_timeout_s * 2,
        },
    )


# JSON columns (an event's headers, an issue's contact, …) written and read on every event.
_JSON_COLUMNS: dict[str, Any] = {
    "json_serializer": jsontext.dumps,
    "json_deserializer": jsontext.loads,
}


def _sqlite_engine(settings: DatabaseSettings, pool: dict[str, Any]) -> AsyncEngine:
    database = make_url(settings.url).database
    file = Path(database) if database and database != ":memory:" else None
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    else:
        pool = {}  # an in-memory database is one connection, not a pool
    engine = create_async_engine(
        settings.url,
        echo=settings.echo,
        **pool,
        **_JSON_COLUMNS,
        connect_args={"timeout": settings.statement_timeout_s * 2},
    )
    if file is not None:
        _gate_checkouts(engine, gate_for(file, timeout_s=settings.statement_timeout_s))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.statement_timeout_s * 2000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_reader(settings: DatabaseSettings) -> AsyncEngine | None:
    """Connections for lone reads that need no turn at the write gate, on a SQLite file; None
    elsewhere, where the service's own engine reads as well as it writes.

    In WAL mode SQLite readers do not wait for the writer, nor it for them: a read takes a
    snapshot of what was committed when it began. Through the service's engine every read
    would wait for its process's turn at the gate like a write, behind the other processes'
    whole transactions. These connections are ``query_only`` (a write through them fails
    rather than being made outside the gate), begin nothing themselves (each statement reads
    on its own), and are not gated.
    """
    if not settings.is_sqlite:
        return None
    database = make_url(settings.url).database
    if not database or database == ":memory:":
        return None
    engine = create_async_engine(
        settings.url,
        echo=settings.echo,
        poolclass=FairPool,
        pool_size=READER_POOL_SIZE,
        max_overflow=0,
        pool_timeout=settings.pool_timeout_s,
        **_JSON_COLUMNS,
        connect_args={"timeout": settings.statement_timeout_s * 2},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.statement_timeout_s * 2000)}")
        cursor.close()

    return engine


# Lone reads at once: a batch of key checks beside a batch of customer look-ups.
READER_POOL_SIZE = 2


def _gate_checkouts(engine: AsyncEngine, gate: ProcessGate) -> None:
    """The process holds ``gate`` while its connection is checked out (see
    :mod:`shared.db.write_gate`)."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(_dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        # Once per checkout, even if the pool runs the checkout listeners again.
        if not record.info.get(_GATED) and gate.enter():
            record.info[_GATED] = True

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi: Any, record: ConnectionPoolEntry) -> None:
        if record.info.pop(_GATED, False):
            gate.leave()


_GATED = "write_gate"


def create_session_factory(
    engine: AsyncEngine, *, info: Mapping[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that can stage rows (:mod:`shared.db.staged`), sharing one statement cache;
    ``info`` is copied into every session's ``info`` (the process's outbox relay, say)."""
    return async_sessionmaker(
        engine,
        expire_on_commit=False,
        autoflush=True,
        sync_session_class=StagingSession,
        info={DIRECT: Direct(engine), **(info or {})},
    )
