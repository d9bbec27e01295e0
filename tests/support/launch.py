"""How a test stack starts ``escalation ARGS``: forked by the fork server (the tests), or from
the console script afresh (the benchmark, whose figures include what a service imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Protocol

ESCALATION = str(Path(sys.executable).with_name("escalation"))


class Process(Protocol):
    """As much of :class:`subprocess.Popen` as a stack (and the benchmark) uses."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class Launcher(Protocol):
    def start(self, args: list[str], env: dict[str, str], log: Path) -> Process: ...


class Exec:
    """Each process started from the console script, as a deployment starts it."""

    def start(self, args: list[str], env: dict[str, str], log: Path) -> Process:
        with open(log, "ab") as out:
            return subprocess.Popen(
                [ESCALATION, *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
