"""Statements compiled once and run on the driver's own connection, for the hottest writes.

Through an ``AsyncSession`` every statement pays for SQLAlchemy's execution machinery and a
greenlet switch: about four times the driver's own cost for the few short INSERTs of an
accepted issue. Here SQLAlchemy still writes the SQL and converts every value (its bind and
result processors, so rows look exactly as the ORM writes and reads them), but only once per
statement; each call then costs the driver's round trip and little else.

:class:`DirectWork` is a unit of work like :class:`shared.db.uow.UnitOfWork`: one transaction
that commits only in ``commit()`` and rolls back otherwise. Driver errors come out as
SQLAlchemy's (``IntegrityError``; a lost connection as a ``DBAPIError`` with
``connection_invalidated``), so callers and error handlers see one kind of exception.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg
from sqlalchemy import BindParameter, Select, bindparam
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, UpdateBase
from sqlalchemy.util import greenlet_spawn

from shared.db.columnar import columnar_sql

Processor = Callable[[Any], Any] | None
T = TypeVar("T")
# Builds a statement for a dialect ("postgresql", "sqlite"); INSERTs and UPDATEs take their
# values from bind parameters named like the columns (see :func:`bound`).
Build = Callable[[str], ClauseElement]


def bound(*keys: str) -> dict[str, BindParameter[Any]]:
    """``.values(**bound("a", "b"))``: each call passes these columns by name."""
    return {key: bindparam(key) for key in keys}


@dataclass(frozen=True, slots=True)
class Prepared:
    """One statement as the driver runs it: SQL, the parameters in order with their
    processors, the values the statement itself fixes (``attempts + 1``, ``SET x = NULL``) and
    the Python-side defaults of columns a caller may leave out, and the result columns'
    processors."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Processor, ...]
    fixed: Mapping[str, Any]
    defaults: tuple[tuple[str, Callable[[], Any]], ...]
    results: tuple[Processor, ...]
    accepts: frozenset[str]
    # Several rows in one statement, a column to a parameter (see shared.db.columnar).
    columnar: str | None = None

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect) -> Prepared:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        prefetch = {column.key for column in compiled.insert_prefetch}
        defaults = tuple(
            (column.key, _python_default(column)) for column in compiled.insert_prefetch
        )
        return cls(
            sql=compiled.string,
            names=names,
            binds=tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ),
            fixed={
                name: compiled.binds[name].effective_value
                for name in names
                if not compiled.binds[name].required and name not in prefetch
            },
            defaults=defaults,
            results=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in _returned(statement)
            ),
            accepts=frozenset(names).union(key for key, _ in defaults),
            columnar=columnar_sql(compiled, dialect),
        )

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The driver's arguments for ``values``; a key the statement has no place for is an
        error, not a column silently left out."""
        if not self.accepts.issuperset(values.keys()):
            unknown = sorted(set(values) - self.accepts)
            raise KeyError(f"{unknown} not in the statement {self.sql[:80]!r}")
        if self.fixed:
            values = {**self.fixed, **values}
        if self.defaults:
            values = {**{k: make() for k, make in self.defaults if k not in values}, **values}
        return [
            value if process is None else process(value)
            for value, process in zip(map(values.__getitem__, self.names), self.binds, strict=True)
        ]

    def columns(self, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """The arguments of :attr:`columnar` for ``rows``: each parameter's values, in order."""
        return [list(column) for column in zip(*map(self.arguments, rows), strict=True)]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for value, process in zip(raw, self.results, strict=True)
        )


def _python_default(column: Any) -> Callable[[], Any]:
    default = column.default
    if default is None:
        return lambda: None
    if default.is_scalar:
        return lambda: default.arg
    if default.is_callable:
        return lambda: default.arg(None)
    raise ValueError(f"column {column.key} has a default direct statements cannot compute")


def _returned(statement: ClauseElement) -> Sequence[Any]:
    """A SELECT's columns, or the RETURNING columns of an INSERT, UPDATE or DELETE."""
    if isinstance(statement, Select):
        return list(statement.selected_columns)
    if isinstance(statement, UpdateBase):
        return list(statement.exported_columns)
    return []


class Direct:
    """Compiles statements for one engine, once each, and hands out units of work."""

    def __init__(self, engine: AsyncEngine, *, on_commit: Callable[[], None] | None = None):
        self.engine = engine
        self.on_commit = on_commit
        self._prepared: dict[Build, Prepared] = {}
        self._driver = _DRIVERS[engine.dialect.driver]

    @property
    def dialect(self) -> str:
        """The database's dialect name ("postgresql", "sqlite")."""
        return self.engine.dialect.name

    def prepared(self, build: Build) -> Prepared:
        """``build`` compiled for this engine, once; ``build`` is the cache key, so pass a
        module-level function, not a lambda."""
        found = self._prepared.get(build)
        if found is None:
            dialect = self.engine.dialect
            found = self._prepared[build] = Prepared.compile(build(dialect.name), dialect)
        return found

    def work(self) -> DirectWork:
        return DirectWork(self)

    def committed(self) -> None:
        """Tell whoever waits for new rows that a write has committed."""
        if self.on_commit is not None:
            self.on_commit()

    def statements(self) -> DirectStatements:
        """Statements that each commit on their own (a lone read, a lone idempotent write)."""
        return DirectStatements(self)


class DirectStatements:
    """A pooled connection's driver; each ``execute``/``fetch`` is one round trip."""

    _transaction = False

    def __init__(self, direct: Direct) -> None:
        self._direct = direct
        self._connection: AsyncConnection | None = None
        self._raw: Any = None
        self._open = False

    @property
    def dialect(self) -> str:
        """The database's dialect name ("postgresql", "sqlite")."""
        return self._direct.dialect

    @classmethod
    async def joined(cls, direct: Direct, connection: AsyncConnection) -> DirectStatements:
        """Statements in the transaction of ``connection``, which someone else owns: they
        neither begin nor end it; a lost connection is invalidated as usual."""
        raw = (await connection.get_raw_connection()).driver_connection
        if not direct._driver.in_transaction(raw):
            # asyncpg's adapter sends BEGIN with the first statement that goes through it.
            await connection.exec_driver_sql("SELECT 1")
        if not direct._driver.in_transaction(raw):
            raise RuntimeError("the connection has no transaction to join")
        statements = cls(direct)
        statements._connection = connection
        statements._raw = raw
        return statements

    async def __aenter__(self) -> Self:
        connection, self._raw = await _checked_out(self._direct.engine)
        try:
            self._connection = connection
            if self._transaction:
                await self._call("BEGIN", self._direct._driver.begin(self._raw))
                self._open = True
        except BaseException:
            await connection.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None
        try:
            if self._open and not connection.invalidated:
                self._open = False
                await self._direct._driver.rollback(self._raw)
        except Exception as exc:
            # A connection that cannot roll back is not handed to anyone else.
            await connection.invalidate(exc)
            if exc_type is None:
                raise
        finally:
            await connection.close()

    async def execute(self, build: Build, values: Mapping[str, Any]) -> int:
        """Run a write; how many rows it changed."""
        prepared = self._direct.prepared(build)
        call = self._direct._driver.execute(self._raw, prepared.sql, prepared.arguments(values))
        count: int = await self._call(prepared.sql, call)
        return count

    async def executemany(self, build: Build, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one write for each of ``rows``, all or none: outside a transaction, in one of its
        own (sent together: one round trip on PostgreSQL)."""
        if not rows:
            return
        prepared = self._direct.prepared(build)
        if prepared.columnar is not None and len(rows) > 1:
            sql, columns = prepared.columnar, prepared.columns(rows)
            await self._call(sql, self._direct._driver.execute(self._raw, sql, columns))
            return
        arguments = [prepared.arguments(values) for values in rows]
        await self._call(
            prepared.sql, self._direct._driver.executemany(self._raw, prepared.sql, arguments)
        )

    async def fetchmany(
        self, build: Build, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """:meth:`executemany` for a statement that returns rows: what every run returned, in
        the order of ``rows``, as one list (a statement that returns one row gives one per
        run)."""
        if not rows:
            return []
        prepared = self._direct.prepared(build)
        if prepared.columnar is not None and len(rows) > 1:
            sql, columns = prepared.columnar, prepared.columns(rows)
            raws = await self._call(sql, self._direct._driver.fetch(self._raw, sql, columns))
            return [prepared.row(raw) for raw in raws]
        arguments = [prepared.arguments(values) for values in rows]
        call = self._direct._driver.fetchmany(self._raw, prepared.sql, arguments)
        return [prepared.row(raw) for raw in await self._call(prepared.sql, call)]

    async def fetch(self, build: Build, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a read (or a write with RETURNING); its rows, converted as the ORM would."""
        prepared = self._direct.prepared(build)
        call = self._direct._driver.fetch(self._raw, prepared.sql, prepared.arguments(values))
        return [prepared.row(raw) for raw in await self._call(prepared.sql, call)]

    async def _call(self, sql: str, call: Any) -> Any:
        try:
            return await call
        except Exception as exc:
            raise await self._translated(sql, exc) from exc

    async def _translated(self, sql: str, exc: Exception) -> Exception:
        driver = self._direct._driver
        if isinstance(exc, driver.integrity):
            return IntegrityError(sql, None, exc)
        lost = isinstance(exc, (*driver.lost, OSError, asyncio.TimeoutError)) or driver.closed(
            self._raw
        )
        if lost and self._connection is not None:
            self._open = False
            await self._connection.invalidate(exc)
        if isinstance(exc, driver.errors):
            return DBAPIError(sql, None, exc, connection_invalidated=lost)
        return exc


class DirectWork(DirectStatements):
    """One transaction on the driver connection: commits in ``commit()``, else rolls back."""

    _transaction = True

    async def commit(self, *, announce: bool = True) -> None:
        """Commit; ``announce``: then tell whoever waits for new rows (:meth:`Direct.committed`),
        unless the caller does that itself."""
        assert self._open, "commit() outside 'async with' or twice"
        await self._call("COMMIT", self._direct._driver.commit(self._raw))
        self._open = False
        if announce:
            self._direct.committed()


async def _checked_out(engine: AsyncEngine) -> tuple[AsyncConnection, Any]:
    """A pooled connection and its driver's connection, in one greenlet.

    Each ``AsyncConnection`` call runs in a greenlet of its own, and each new greenlet maps and
    unmaps a fresh stack for its frames; ``engine.connect()`` and ``get_raw_connection()``
    would take one each. The pool's checkout and its events run as they do there."""
    sync, raw = await greenlet_spawn(_connect, engine.sync_engine)
    return AsyncConnection(engine, sync), raw


def _connect(engine: Engine) -> tuple[Connection, Any]:
    connection = engine.connect()
    try:
        return connection, connection.connection.driver_connection
    except BaseException:
        connection.close()
        raise


@dataclass(frozen=True)
class _Driver:
    """What differs between the drivers: transaction verbs, the call shapes, error classes."""

    begin: Callable[[Any], Any]
    commit: Callable[[Any], Any]
    rollback: Callable[[Any], Any]
    execute: Callable[[Any, str, list[Any]], Any]
    executemany: Callable[[Any, str, list[list[Any]]], Any]
    fetch: Callable[[Any, str, list[Any]], Any]
    fetchmany: Callable[[Any, str, list[list[Any]]], Any]
    integrity: tuple[type[Exception], ...]
    lost: tuple[type[Exception], ...]
    errors: tuple[type[Exception], ...]
    closed: Callable[[Any], bool]
    in_transaction: Callable[[Any], bool]


async def _pg_execute(connection: Any, sql: str, arguments: list[Any]) -> int:
    status: str = await connection.execute(sql, *arguments)
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _pg_fetch(connection: Any, sql: str, arguments: list[Any]) -> list[Any]:
    return list(await connection.fetch(sql, *arguments))


async def _sqlite_execute(connection: Any, sql: str, arguments: list[Any]) -> int:
    async with connection.execute(sql, arguments) as cursor:
        count: int = cursor.rowcount
        return count


async def _sqlite_executemany(connection: Any, sql: str, arguments: list[list[Any]]) -> None:
    async def run() -> None:
        await (await connection.executemany(sql, arguments)).close()

    await _sqlite_atomic(connection, run)


async def _sqlite_fetch(connection: Any, sql: str, arguments: list[Any]) -> list[Any]:
    async with connection.execute(sql, arguments) as cursor:
        return list(await cursor.fetchall())


async def _sqlite_fetchmany(connection: Any, sql: str, arguments: list[list[Any]]) -> list[Any]:
    async def run() -> list[Any]:
        return [row for values in arguments for row in await _sqlite_fetch(connection, sql, values)]

    return await _sqlite_atomic(connection, run)


async def _sqlite_atomic(connection: Any, run: Callable[[], Awaitable[T]]) -> T:
    """All of ``run`` or none, as asyncpg's ``executemany``: in the caller's transaction, or
    outside one (autocommit, where each statement would commit on its own) in one of its own."""
    if connection.in_transaction:
        return await run()
    await _sqlite_verb("BEGIN IMMEDIATE")(connection)
    try:
        result = await run()
    except BaseException:
        await _sqlite_verb("ROLLBACK")(connection)
        raise
    await _sqlite_verb("COMMIT")(connection)
    return result


def _sqlite_verb(verb: str) -> Callable[[Any], Any]:
    async def run(connection: Any) -> None:
        await (await connection.execute(verb)).close()

    return run


_DRIVERS = {
    "asyncpg": _Driver(
        # asyncpg's explicit statements; SQLAlchemy's own wrapper is not told, so it has no
        # transaction of its own to end when the connection goes back to the pool.
        begin=lambda connection: connection.execute("BEGIN"),
        commit=lambda connection: connection.execute("COMMIT"),
        rollback=lambda connection: connection.execute("ROLLBACK"),
        execute=_pg_execute,
        executemany=lambda connection, sql, arguments: connection.executemany(sql, arguments),
        fetch=_pg_fetch,
        fetchmany=lambda connection, sql, arguments: connection.fetchmany(sql, arguments),
        integrity=(asyncpg.IntegrityConstraintViolationError,),
        lost=(
            asyncpg.PostgresConnectionError,
            # The protocol's state is off, e.g. after the server ended the session between
            # two statements: the connection cannot be trusted with another.
            asyncpg.InternalClientError,
            asyncpg.CannotConnectNowError,
            asyncpg.AdminShutdownError,
        ),
        errors=(asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError),
        # asyncpg's InterfaceError is both "connection is closed" and a misused API.
        closed=lambda connection: bool(connection.is_closed()),
        in_transaction=lambda connection: bool(connection.is_in_transaction()),
    ),
    "aiosqlite": _Driver(
        # Writers take the lock up front, as the engine's own transactions do.
        begin=_sqlite_verb("BEGIN IMMEDIATE"),
        commit=_sqlite_verb("COMMIT"),
        rollback=_sqlite_verb("ROLLBACK"),
        execute=_sqlite_execute,
        executemany=_sqlite_executemany,
        fetch=_sqlite_fetch,
        fetchmany=_sqlite_fetchmany,
        integrity=(sqlite3.IntegrityError,),
        lost=(),
        errors=(sqlite3.Error,),
        closed=lambda connection: False,
        in_transaction=lambda connection: bool(connection.in_transaction),
    ),
}
