"""Starts ``escalation ARGS`` processes for the tests from a process that has imported the
services once, so each start forks instead of importing everything again.

Importing the services costs about 1.3 s of CPU per process on the 2-core machine: most of what
a service spends before it answers. The end-to-end and fault tests start some 220 service
processes per run of the suite. A forked process runs the same command line as the console
script (``services.cli.app`` with its arguments), with its own environment, log file and
process id, so a test can still kill it with SIGKILL.

The server (``python -m tests.support.forkserver SOCKET``) takes one request per connection: a
JSON line with the arguments, the environment and the log file. It answers with the child's pid
as a line, and once the child has ended, its exit status (a negative signal number if a signal
ended it, as :class:`subprocess.Popen` gives it).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

_REAP_EVERY_S = 0.05


def _preload() -> None:
    """What every service imports, so that forked children find it imported."""
    import services.classifier.app
    import services.cli
    import services.intake.app
    import services.notifier.app
    import services.serve  # noqa: F401


def _child(request: dict[str, Any], inherited: list[socket.socket]) -> NoReturn:
    """In the forked child: become ``escalation ARGS`` and never return."""
    code = 1
    try:
        for held in inherited:
            held.close()
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        from services.cli import app

        sys.argv = [request["argv0"], *request["args"]]
        try:
            app()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # the child reports it in its log and exits
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _status(raw: int) -> int:
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def serve(path: str) -> None:
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"{path}.new")
    listener.listen(64)
    os.rename(f"{path}.new", path)  # the client connects once the path is there
    waiting: dict[int, socket.socket] = {}
    while True:
        readable, _, _ = select.select([listener], [], [], _REAP_EVERY_S)
        if readable:
            connection, _ = listener.accept()
            request = json.loads(connection.makefile("rb").readline())
            if request.get("stop"):
                break
            pid = os.fork()
            if pid == 0:
                _child(request, [listener, connection, *waiting.values()])
            connection.sendall(f"{pid}\n".encode())
            waiting[pid] = connection
        while waiting:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in waiting:
                connection = waiting.pop(pid)
                with contextlib.suppress(OSError):
                    connection.sendall(f"{_status(raw)}\n".encode())
                connection.close()
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    listener.close()


@dataclass
class Forked:
    """A forked ``escalation`` process, answering as much of :class:`subprocess.Popen` as the
    tests use. Signals go through a pidfd, so once it has ended they cannot reach a process
    given its pid since (-1: it had ended before the pidfd was opened)."""

    args: list[str]
    pid: int
    _connection: socket.socket
    _pidfd: int
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._connection], [], [], 0)[0]:
            self._finish()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._connection], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self._finish()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None and self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _finish(self) -> None:
        line = self._connection.makefile("rb").readline()
        # No status: the server ended first (when stopped, it kills the children it has left).
        self.returncode = int(line) if line else -signal.SIGKILL
        self._connection.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)


@dataclass
class ForkServer:
    """One per test process: started on first use, stopped by :meth:`close`."""

    workdir: Path
    argv0: str
    _process: subprocess.Popen[bytes] | None = None
    _path: Path = field(init=False)

    def __post_init__(self) -> None:
        self._path = self.workdir / "forkserver.sock"

    def start(self, args: list[str], env: dict[str, str], log: Path) -> Forked:
        self._ensure_running()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(self._path))
        request = {
            "argv0": self.argv0,
            "args": args,
            "env": env,
            "log": str(log),
            "cwd": os.getcwd(),
        }
        connection.sendall(json.dumps(request).encode() + b"\n")
        line = b""
        while not line.endswith(b"\n"):
            chunk = connection.recv(64)
            if not chunk:
                raise RuntimeError(f"fork server gave no pid: {self.log_tail()}")
            line += chunk
        pid = int(line)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended and reaped already; its status is on the way
            pidfd = -1
        return Forked([self.argv0, *args], pid, connection, pidfd)

    def _ensure_running(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._path.unlink(missing_ok=True)
        root = Path(__file__).resolve().parents[2]
        with open(self.workdir / "forkserver.log", "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.forkserver", str(self._path)],
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while not self._path.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fork server did not start: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        path = self.workdir / "forkserver.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as connection:
                connection.connect(str(self._path))
                connection.sendall(b'{"stop": true}\n')
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._path.unlink(missing_ok=True)


if __name__ == "__main__":
    serve(sys.argv[1])
