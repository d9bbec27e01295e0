"""Stopping and starting the machine's own PostgreSQL cluster (Debian's pg_ctlcluster)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

CLUSTERS = Path("/etc/postgresql")


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str = "main"

    def _ctl(self, action: str) -> None:
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                self.version,
                self.name,
                action,
                *(["-m", "fast"] if action == "stop" else []),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        self._ctl("stop")

    def start(self) -> None:
        self._ctl("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", 5432), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("PostgreSQL did not come back")


def local_cluster(database_url: str) -> Cluster:
    """The cluster serving ``database_url``; skips unless it is this machine's and ours to stop."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql") or url.host not in ("127.0.0.1", "localhost"):
        pytest.skip("the PostgreSQL outage needs the machine's own PostgreSQL")
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not CLUSTERS.is_dir():
        pytest.skip("stopping PostgreSQL needs pg_ctlcluster and root")
    versions = sorted(p.name for p in CLUSTERS.iterdir() if p.is_dir())
    if not versions:
        pytest.skip("no PostgreSQL cluster under /etc/postgresql")
    return Cluster(versions[-1])
