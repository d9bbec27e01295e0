"""Finding a database and making a fresh, migrated one per test.

Order: DATABASE_URL (``DATABASE_URL=sqlite`` selects SQLite); testcontainers PostgreSQL when a
Docker engine answers; the local PostgreSQL on 127.0.0.1:5432; SQLite. On PostgreSQL each test
gets a database of its own: one an earlier test of this worker emptied, else a clone of a migrated
template. On SQLite a copy of a migrated file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

from shared.db import migrate
from tests.support.docker import docker_available

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class DatabaseServer:
    """Makes per-test databases on one server (or in one folder, for SQLite)."""

    kind: str
    admin_url: str | None
    workdir: Path
    _template: str | None = None
    _created: list[str] = field(default_factory=list)
    _emptied: list[str] = field(default_factory=list)

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "sqlite"

    async def new_database(self) -> str:
        """A database at the migrations' head with no rows in it; its SQLAlchemy URL."""
        if self.is_sqlite:
            template = self.workdir / "template.db"
            if self._template is None:
                await asyncio.to_thread(migrate.upgrade, f"sqlite+aiosqlite:///{template}")
                self._template = str(template)
            target = self.workdir / f"t_{uuid.uuid4().hex[:10]}.db"
            shutil.copyfile(template, target)
            return f"sqlite+aiosqlite:///{target}"
        if self._template is None:
            self._template = await self._create(f"csp_tmpl_{uuid.uuid4().hex[:10]}")
            await asyncio.to_thread(migrate.upgrade, self._url(self._template))
        if self._emptied:
            return self._url(self._emptied.pop())
        name = await self._create(f"csp_test_{uuid.uuid4().hex[:12]}", template=self._template)
        return self._url(name)

    async def release(self, url: str) -> None:
        """A test is done with the database ``url`` from :meth:`new_database`. On PostgreSQL it
        is emptied for the worker's next test rather than dropped at the end: every ``DROP
        DATABASE`` waits for a checkpoint, which had to write out the pages of every database
        created since (up to 19 s a checkpoint while the suite ran). Emptying it: its sessions
        ended, every table but ``alembic_version`` truncated, sequences restarted. A database that
        cannot be emptied is left to :meth:`drop_all`. Its schema is kept as it is: a test that
        changes a schema takes :meth:`empty_database`, which is never reused."""
        name = make_url(url).database
        if self.is_sqlite or name is None or name not in self._created:
            return
        try:
            await self._empty(name)
        except (asyncpg.PostgresError, OSError):
            return
        self._emptied.append(name)

    async def empty_database(self) -> str:
        """A database with no schema at all (for migration tests)."""
        if self.is_sqlite:
            return f"sqlite+aiosqlite:///{self.workdir / f'e_{uuid.uuid4().hex[:10]}.db'}"
        return self._url(await self._create(f"csp_empty_{uuid.uuid4().hex[:12]}"))

    async def drop_all(self) -> None:
        """All at once: each ``DROP DATABASE`` waits for a checkpoint, and drops waiting together
        share one."""
        names, self._created = self._created, []
        await asyncio.gather(
            *(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)') for name in names)
        )

    async def _create(self, name: str, *, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        await self._execute(f'CREATE DATABASE "{name}"{clause}')
        self._created.append(name)
        return name

    def _url(self, database: str) -> str:
        return self._admin.set(drivername="postgresql+asyncpg", database=database).render_as_string(
            hide_password=False
        )

    @property
    def _admin(self) -> URL:
        assert self.admin_url is not None
        return make_url(self.admin_url)

    async def _empty(self, name: str) -> None:
        await self._execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        connection = await self._connect(name)
        try:
            await connection.execute("SET lock_timeout = '5s'")
            tables = await connection.fetch(
                "SELECT quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            listed = ", ".join(row[0] for row in tables)
            await connection.execute(f"TRUNCATE {listed} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()

    async def _execute(self, sql: str) -> None:
        connection = await self._connect(self._admin.database or "postgres")
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def _connect(self, database: str) -> asyncpg.Connection:
        admin = self._admin
        return await asyncpg.connect(
            host=admin.host,
            port=admin.port or 5432,
            user=admin.username,
            password=admin.password,
            database=database,
        )


def _local_postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


# Where the tests keep the DATABASE_URL they were started with (see :func:`take_selection`).
SELECTION = "CSP_TESTS_DATABASE_URL"


def take_selection() -> None:
    """Move ``DATABASE_URL``, which chooses the tests' database server (``sqlite`` is not a URL),
    out of the way of settings built inside the tests, which would read it as their own."""
    if "DATABASE_URL" in os.environ:
        os.environ[SELECTION] = os.environ.pop("DATABASE_URL")


@asynccontextmanager
async def database_server(workdir: Path) -> AsyncIterator[DatabaseServer]:
    configured = os.environ.get(SELECTION)
    async with AsyncExitStack() as stack:
        if configured and configured.startswith("sqlite"):
            server = DatabaseServer("sqlite", None, workdir)
        elif configured:
            server = DatabaseServer("postgresql", configured, workdir)
        elif docker_available():
            from testcontainers.postgres import PostgresContainer

            container = stack.enter_context(PostgresContainer("postgres:16-alpine"))
            server = DatabaseServer("postgresql", container.get_connection_url(), workdir)
        elif _local_postgres_answers():
            server = DatabaseServer("postgresql", LOCAL_POSTGRES, workdir)
        else:
            server = DatabaseServer("sqlite", None, workdir)
        try:
            yield server
        finally:
            await server.drop_all()
