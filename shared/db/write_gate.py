"""One process at a time in a SQLite file, handed on by the kernel.

SQLite's own lock is taken by ``BEGIN IMMEDIATE``; a process that finds it taken waits in
SQLite's busy handler, which sleeps 1, 2, 5 … up to 100 ms between tries and so wakes late, or
to find the lock taken again by a process that did not wait at all. With three services on one
file that wait is the pipeline's slowest hop.

A gate is an exclusive ``flock`` on a file beside the database, held by a process while its one
pooled connection is checked out (see :func:`shared.db.engine.create_engine`). Waiting for it
is one blocking ``flock`` call in a thread: the kernel wakes a waiter the moment the holder lets
go, so processes take turns in the order the kernel grants them instead of by polling. (File
lock libraries poll too, hence the few lines of ``fcntl`` here.)

The gate only decides who tries SQLite's lock first; SQLite's lock still guards the data. A
process that cannot get the gate within its time-out goes on without it, to SQLite's busy
handler as before, so a process that holds its connection for long delays the others but never
stops them. Engines of one process on the same file share one gate and do not exclude each
other, as they share their lock file's descriptor (``flock`` is per open file); they meet at
SQLite's lock as before. A process that dies holding the gate loses it with its descriptors.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from pathlib import Path

from sqlalchemy.util.concurrency import await_, in_greenlet

_gates: dict[Path, ProcessGate] = {}
_gates_lock = threading.Lock()


def gate_for(database: Path, *, timeout_s: float) -> ProcessGate:
    """This process's gate for the SQLite file ``database``."""
    path = database.resolve().with_name(database.name + "-gate")
    with _gates_lock:
        gate = _gates.get(path)
        if gate is None:
            gate = _gates[path] = ProcessGate(path, timeout_s=timeout_s)
        return gate


class ProcessGate:
    """An exclusive ``flock`` on ``path``, held while any of this process's holders holds it.

    The lock file is open only while the gate is held or waited for: an idle process keeps no
    descriptor, and closing it would let go of the lock anyway."""

    def __init__(self, path: Path, *, timeout_s: float) -> None:
        self.path = path
        self._timeout_s = timeout_s
        self._guard = threading.Lock()
        self._fd: int | None = None
        self._locked = False
        self._holders = 0
        self._awaiting = 0
        self._waiting: asyncio.Future[None] | None = None

    def enter(self) -> bool:
        """Take the gate; False if it was not taken in time, or cannot be waited for here
        (outside SQLAlchemy's greenlet, or beside a wait begun in another event loop), and the
        caller goes on without it."""
        with self._guard:
            if self._locked or self._try():
                self._holders += 1
                return True
            waiting = self._waiting
            loop = asyncio.get_running_loop() if in_greenlet() else None
            if loop is None or (waiting is not None and waiting.get_loop() is not loop):
                self._settle()
                return False  # a wait cannot be awaited here
            if waiting is None:
                waiting = loop.run_in_executor(None, self._wait, self._fd)
                waiting.add_done_callback(self._granted)
                self._waiting = waiting
            self._awaiting += 1
        taken = False
        try:
            await_(asyncio.wait_for(asyncio.shield(waiting), self._timeout_s))
            taken = True
        except (TimeoutError, OSError):
            pass  # SQLite's busy handler decides, as it would without a gate
        finally:
            with self._guard:
                self._awaiting -= 1
                taken = taken and self._locked
                if taken:
                    self._holders += 1
                self._settle()
        return taken

    def leave(self) -> None:
        """Give back one holder's share; the last one out lets the next process in."""
        with self._guard:
            self._holders -= 1
            self._settle()

    def _try(self) -> bool:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._locked = True
        return True

    @staticmethod
    def _wait(fd: int | None) -> None:
        assert fd is not None
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _granted(self, waited: asyncio.Future[None]) -> None:
        """The kernel gave this process the gate (or the wait failed)."""
        with self._guard:
            self._waiting = None
            if not waited.cancelled() and waited.exception() is None:
                self._locked = True
            self._settle()

    def _settle(self) -> None:
        """Let go once nobody holds, waits for or is about to be handed the gate (a waiter
        that gave up leaves a late grant to nobody)."""
        if self._holders or self._awaiting or self._waiting is not None or self._fd is None:
            return
        if self._locked:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._locked = False
        os.close(self._fd)
        self._fd = None
