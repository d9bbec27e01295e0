"""SQLite's write gate: the processes sharing a file take turns at it, each woken by the kernel
as the one before lets go, and none is ever stopped by it for longer than its time-out."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import create_engine, create_reader
from shared.settings import DatabaseSettings
from tests.support.database import DatabaseServer

# Another service's process, holding the gate until told to let go (a line on its stdin).
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
async def sqlite_url(db_server: DatabaseServer) -> AsyncIterator[str]:
    if not db_server.is_sqlite:
        pytest.skip("the gate is SQLite's")
    url = await db_server.new_database()
    yield url
    await db_server.release(url)


def _gate_file(url: str) -> Path:
    database = make_url(url).database
    assert database is not None
    return Path(database).resolve().with_name(Path(database).name + "-gate")


@asynccontextmanager
async def _held_elsewhere(gate: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(gate),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
        yield holder
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def _let_go(holder: asyncio.subprocess.Process) -> None:
    assert holder.stdin is not None
    holder.stdin.write(b"\n")
    await holder.stdin.drain()
    await asyncio.wait_for(holder.wait(), 30)


async def _waiting_for(gate: Path) -> None:
    """Until the kernel lists a process blocked on ``gate``'s lock (``/proc/locks``)."""
    inode = f":{os.stat(gate).st_ino} "
    for _ in range(600):
        locks = Path("/proc/locks").read_text().splitlines()
        if any("->" in line and inode in line for line in locks):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nobody waits for {gate}")


def _free(gate: Path) -> bool:
    """Whether another open file could take the gate now (``flock`` locks are per open file,
    so this process's own hold counts too)."""
    fd = os.open(gate, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # and the lock with it
    return True


async def _write(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE partners SET name = name"))


async def test_a_process_waits_at_the_gate_until_the_holder_lets_go(sqlite_url: str) -> None:
    engine = create_engine(DatabaseSettings(url=sqlite_url))
    gate = _gate_file(sqlite_url)
    try:
        await _write(engine)  # the gate file exists, and nobody holds it afterwards
        assert _free(gate)
        async with _held_elsewhere(gate) as holder:
            writing = asyncio.create_task(_write(engine))
            await _waiting_for(gate)
            assert not writing.done()
            await _let_go(holder)
            await asyncio.wait_for(writing, 30)
        assert _free(gate)

        async with engine.connect() as connection:
            assert not _free(gate)  # held for as long as the connection is out
            await connection.execute(text("SELECT 1"))
        assert _free(gate)
    finally:
        await engine.dispose()


async def test_a_holder_that_keeps_the_gate_too_long_is_gone_past(sqlite_url: str) -> None:
    """Past the time-out, SQLite's own lock decides: the write goes through while the gate is
    still held elsewhere."""
    engine = create_engine(DatabaseSettings(url=sqlite_url, statement_timeout_s=0.2))
    try:
        await _write(engine)
        async with _held_elsewhere(_gate_file(sqlite_url)) as holder:
            await asyncio.wait_for(_write(engine), 30)
            assert holder.returncode is None
            await _let_go(holder)
        # The late grant of the abandoned wait went to nobody and was let go.
        for _ in range(600):
            if _free(_gate_file(sqlite_url)):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the gate stayed held")
        await asyncio.wait_for(_write(engine), 30)
    finally:
        await engine.dispose()


async def test_engines_of_one_process_do_not_wait_for_each_other(sqlite_url: str) -> None:
    """They share the gate, so one holding it never stops the other (which meets SQLite's lock,
    as without a gate)."""
    first = create_engine(DatabaseSettings(url=sqlite_url))
    second = create_engine(DatabaseSettings(url=sqlite_url, statement_timeout_s=120))
    try:
        async with first.connect():  # checked out, in no transaction
            await asyncio.wait_for(_write(second), 30)
            assert not _free(_gate_file(sqlite_url))
        assert _free(_gate_file(sqlite_url))
    finally:
        await first.dispose()
        await second.dispose()


async def test_lone_reads_go_past_the_gate_and_write_nothing(sqlite_url: str) -> None:
    """The reader's connections (the intake's key checks and customer look-ups) read while
    another process holds the gate, where the service's engine waits; they cannot write."""
    settings = DatabaseSettings(url=sqlite_url, statement_timeout_s=120)
    engine = create_engine(settings)
    reader = create_reader(settings)
    assert reader is not None
    try:
        await _write(engine)
        async with _held_elsewhere(_gate_file(sqlite_url)) as holder:
            writing = asyncio.create_task(_write(engine))
            await _waiting_for(_gate_file(sqlite_url))
            assert await asyncio.wait_for(_read_and_try_to_write(reader), 30) is not None
            assert not writing.done()
            await _let_go(holder)
            await asyncio.wait_for(writing, 30)
    finally:
        await reader.dispose()
        await engine.dispose()


async def _read_and_try_to_write(reader: AsyncEngine) -> int | None:
    async with reader.connect() as connection:
        read: int | None = await connection.scalar(text("SELECT count(*) FROM partners"))
        with pytest.raises(OperationalError, match="readonly"):
            await connection.execute(text("UPDATE partners SET name = name"))
    return read


def test_only_a_sqlite_file_has_a_reader() -> None:
    assert create_reader(DatabaseSettings(url="sqlite+aiosqlite:///:memory:")) is None
    assert create_reader(DatabaseSettings(url="postgresql+asyncpg://x@127.0.0.1/x")) is None
